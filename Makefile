# facerec: elastic face recognition in C.
#   make            build build/facerec
#   make run        set up (packages, models) and start the service
#   make test       set up and run the whole test suite (SANITIZE=1 for ASan+UBSan)
#   make bench      run the benchmarks
#   make fuzz       build the libFuzzer targets (clang)

CC        ?= cc
SANITIZE  ?= 0
BUILD     ?= build
MODELS    ?= $(if $(FACEREC_MODELS),$(FACEREC_MODELS),models)

PKGS      := libjpeg libpng libwebp libwebpdemux sqlite3 libmicrohttpd libcurl libcrypto jansson
CPPFLAGS  += -Isrc -D_GNU_SOURCE
CFLAGS    ?= -O3 -g
CFLAGS    += -std=c11 -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wno-missing-field-initializers
LDLIBS    += -lXNNPACK -lpthreadpool -lcpuinfo -lpthread -lm
PKG_CFLAGS = $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   = $(shell pkg-config --libs $(PKGS) 2>/dev/null)

ifeq ($(SANITIZE),1)
BUILD     := $(BUILD)/asan
CFLAGS    += -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
LDFLAGS   += -fsanitize=address,undefined
endif

LIB_SRC   := $(shell find src -name '*.c' ! -name main.c | sort)
WEB_FILES := $(sort $(wildcard web/*))
WEB_GEN   := $(BUILD)/gen/web_files.c
LIB_OBJ   := $(LIB_SRC:%.c=$(BUILD)/obj/%.o) $(BUILD)/obj/gen/web_files.o
TEST_SRC  := $(sort $(wildcard tests/test_*.c))
TEST_BIN  := $(TEST_SRC:tests/%.c=$(BUILD)/tests/%)
TEST_SH   := $(sort $(wildcard tests/test_*.sh))
FUZZ_SRC  := $(sort $(wildcard fuzz/fuzz_*.c))

.PHONY: all deps test-deps models fixtures emulators run test test-unit bench fuzz clean format smoke
all: $(BUILD)/facerec

$(BUILD)/obj/%.o: %.c Makefile
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(PKG_CFLAGS) $(CFLAGS) -MMD -MP -c $< -o $@

# The page's files (web/) as C arrays: the binary serves them with no files at run time.
$(WEB_GEN): web $(WEB_FILES) scripts/embed-web.sh
	@mkdir -p $(dir $@)
	scripts/embed-web.sh $@ $(WEB_FILES)

$(BUILD)/obj/gen/web_files.o: $(WEB_GEN) Makefile
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) -c $< -o $@

$(BUILD)/libfacerec.a: $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/facerec: $(BUILD)/obj/src/main.o $(BUILD)/libfacerec.a
	$(CC) $(LDFLAGS) $^ $(PKG_LIBS) $(LDLIBS) -o $@

$(BUILD)/tests/%: tests/%.c $(BUILD)/libfacerec.a tests/check.h
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) -Itests $(PKG_CFLAGS) $(CFLAGS) $(LDFLAGS) $< $(BUILD)/libfacerec.a $(PKG_LIBS) $(LDLIBS) -o $@

deps:
	@scripts/deps.sh

test-deps:
	@scripts/deps.sh --test

models: deps
	@FACEREC_MODELS=$(MODELS) scripts/models.sh

# Test photos that are not ours to commit (face-api's demo group photos), checked by sha256.
fixtures: deps
	@scripts/fixtures.sh

# S3 and SQS emulators for the integration tests (npm).
emulators: deps
	@scripts/emulators.sh

# The whole service on this machine: API on PORT (8000), embedded queue and store in DATA_DIR.
run: deps models
	@$(MAKE) --no-print-directory all
	FACEREC_MODELS=$(MODELS) $(BUILD)/facerec serve

# The whole suite: unit and integration tests, then the same under ASan+UBSan (CI runs this).
test: test-deps models fixtures emulators
	@$(MAKE) --no-print-directory test-unit
	@$(MAKE) --no-print-directory test-unit SANITIZE=1

test-unit: $(BUILD)/facerec $(TEST_BIN)
	@FACEREC_MODELS=$(MODELS) FACEREC_BIN=$(BUILD)/facerec FACEREC_BUILD=$(BUILD) scripts/run-tests.sh $(TEST_BIN) $(TEST_SH)

bench: deps models $(BUILD)/facerec
	FACEREC_MODELS=$(MODELS) $(BUILD)/facerec bench nn

fuzz: $(FUZZ_SRC:fuzz/%.c=build/fuzz/%)
build/fuzz/%: fuzz/%.c $(LIB_SRC) $(WEB_GEN)
	@mkdir -p $(dir $@)
	clang $(CPPFLAGS) $(PKG_CFLAGS) -std=c11 -g -O1 -fsanitize=fuzzer,address,undefined $< $(LIB_SRC) $(WEB_GEN) $(PKG_LIBS) $(LDLIBS) -o $@

# Against a running `make run` (or SMOKE_URL): enrol a person, recognise another photo of them.
smoke:
	@scripts/smoke.sh

format:
	clang-format -i $$(find src tests fuzz bench -name '*.[ch]')

clean:
	rm -rf build

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)
