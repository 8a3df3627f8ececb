// synth_png.js W H: writes to stdout a W x H RGB PNG of smooth stripes and blobs, a stand-in for a
// large photo wherever only its size matters (the face detector's work grows with the pixels).
// Node only (zlib), so the tests need no image tools.
'use strict';
const zlib = require('zlib');
const W = Number(process.argv[2]), H = Number(process.argv[3]);
if (!(W >= 1 && W <= 16384 && H >= 1 && H <= 16384)) {
    console.error('usage: node synth_png.js W H (1..16384)');
    process.exit(2);
}
const stride = W * 3 + 1;
const raw = Buffer.alloc(stride * H);
for (let y = 0; y < H; y++) {
    const o = y * stride; // filter byte 0 (none) then RGB
    for (let x = 0; x < W; x++) {
        const v = 128 + 60 * Math.sin(x / 37) * Math.cos(y / 53) + 40 * Math.sin((x + y) / 91);
        raw[o + 1 + x * 3] = v;
        raw[o + 2 + x * 3] = v * 0.8;
        raw[o + 3 + x * 3] = 255 - v;
    }
}
const table = new Int32Array(256).map((_, n) => {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    return c;
});
const crc32 = b => {
    let c = -1;
    for (const x of b) c = table[(c ^ x) & 255] ^ (c >>> 8);
    return (c ^ -1) >>> 0;
};
const chunk = (type, data) => {
    const len = Buffer.alloc(4), crc = Buffer.alloc(4), td = Buffer.concat([Buffer.from(type), data]);
    len.writeUInt32BE(data.length);
    crc.writeUInt32BE(crc32(td));
    return Buffer.concat([len, td, crc]);
};
const ihdr = Buffer.alloc(13);
ihdr.writeUInt32BE(W, 0);
ihdr.writeUInt32BE(H, 4);
ihdr[8] = 8; // bit depth
ihdr[9] = 2; // RGB
process.stdout.write(Buffer.concat([
    Buffer.from([137, 80, 78, 71, 13, 10, 26, 10]), chunk('IHDR', ihdr),
    chunk('IDAT', zlib.deflateSync(raw)), chunk('IEND', Buffer.alloc(0)),
]));
