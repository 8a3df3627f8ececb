/* tflite.h: reads a TFLite FlatBuffer (schema v3) into an nn_graph.
 *
 * The reader walks the FlatBuffer by hand against TensorFlow's schema.fbs. Every offset, vector
 * length, string and buffer range is checked against the file before it is read, so a truncated,
 * corrupted or hostile file gives an error that names what is wrong, never a read out of bounds.
 * Only float32 graphs of the ops listed in graph.h are accepted; anything else is an error that
 * names the op or type. */
#ifndef FR_NN_TFLITE_H
#define FR_NN_TFLITE_H

#include <stddef.h>
#include <stdint.h>

#include "nn/graph.h"

#define NN_TFLITE_MAX_BYTES (256u << 20) /* largest model file accepted */

/* Parses len bytes at buf. On success *out is a new graph the caller frees with
 * nn_graph_free(); the graph copies what it needs, so buf may be freed afterwards.
 * Returns 0, or FR_EFORMAT / FR_EUNSUPPORTED / FR_ETOOBIG / FR_ENOMEM with err set. */
int nn_tflite_parse(const uint8_t *buf, size_t len, struct nn_graph **out,
                    char err[FR_ERR_LEN]) FR_MUST_USE;

/* Reads and parses the file at path (capped at NN_TFLITE_MAX_BYTES). Errors as above, plus
 * FR_EIO when the file cannot be read. */
int nn_tflite_load(const char *path, struct nn_graph **out, char err[FR_ERR_LEN]) FR_MUST_USE;

#endif
