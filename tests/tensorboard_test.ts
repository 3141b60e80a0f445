import assert from "node:assert/strict";
import protobuf from "protobufjs";
import { encodePng, ImageFormatError } from "../lib/image_file.ts";
import { TensorBoardWriter } from "../lib/tensorboard.ts";
import { TENSORBOARD_PROTO } from "./_tensorboard_schema.ts";

// An independent reader: the published schema (not lib/tensorboard.ts's), a
// bitwise CRC-32C (not the crc-32 package), and the record framing of
// tensorflow/core/lib/io/record_reader.cc.

// keepCase: field names as published (wall_time), not camel-cased.
const EVENT = protobuf.parse(TENSORBOARD_PROTO, { keepCase: true }).root.lookupType(
  "tensorboard.Event",
);

/** CRC-32C (Castagnoli), bit by bit: reflected polynomial 0x82f63b78. */
function crc32c(bytes: Uint8Array): number {
  let crc = 0xffffffff;
  for (const byte of bytes) {
    crc ^= byte;
    for (let k = 0; k < 8; k++) crc = crc & 1 ? (crc >>> 1) ^ 0x82f63b78 : crc >>> 1;
  }
  return (crc ^ 0xffffffff) >>> 0;
}

/** tensorflow/core/lib/hash/crc32c.h: rotate right by 15 bits, add 0xa282ead8. */
function mask(crc: number): number {
  return ((((crc >>> 15) | (crc << 17)) >>> 0) + 0xa282ead8) % 2 ** 32;
}

/** Split a record file into its records' data, checking every length and both CRCs. */
function readRecords(bytes: Uint8Array): Uint8Array[] {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const records: Uint8Array[] = [];
  for (let at = 0; at < bytes.length;) {
    if (bytes.length - at < 12) throw new Error(`truncated header at byte ${at}`);
    const length = Number(view.getBigUint64(at, true));
    if (view.getUint32(at + 8, true) !== mask(crc32c(bytes.subarray(at, at + 8)))) {
      throw new Error(`bad length CRC at byte ${at}`);
    }
    if (bytes.length - at < 12 + length + 4) throw new Error(`truncated record at byte ${at}`);
    const data = bytes.subarray(at + 12, at + 12 + length);
    if (view.getUint32(at + 12 + length, true) !== mask(crc32c(data))) {
      throw new Error(`bad data CRC at byte ${at}`);
    }
    records.push(data);
    at += 12 + length + 4;
  }
  return records;
}

interface DecodedEvent {
  wall_time?: number;
  step?: number;
  file_version?: string;
  summary?: {
    value: {
      tag: string;
      simple_value?: number;
      image?: {
        height: number;
        width: number;
        colorspace: number;
        encoded_image_string: Uint8Array;
      };
    }[];
  };
}

function readEvents(bytes: Uint8Array): DecodedEvent[] {
  return readRecords(bytes).map((data) =>
    EVENT.toObject(EVENT.decode(data), { longs: Number, oneofs: false }) as DecodedEvent
  );
}

/** The one event file in `dir`. */
async function eventFile(dir: string): Promise<{ name: string; bytes: Uint8Array }> {
  const names = (await Array.fromAsync(Deno.readDir(dir))).map((e) => e.name);
  assert.equal(names.length, 1, names.join(", "));
  return { name: names[0], bytes: await Deno.readFile(`${dir}/${names[0]}`) };
}

Deno.test("the test's CRC-32C and mask match published check values", () => {
  // The CRC-32C check value (RFC 3720, B.4; crc catalogue "CRC-32/ISCSI").
  assert.equal(crc32c(new TextEncoder().encode("123456789")), 0xe3069283);
  assert.equal(crc32c(new Uint8Array(32)), 0x8a9136aa); // RFC 3720 B.4: 32 bytes of zeros
  assert.equal(mask(0), 0xa282ead8);
});

Deno.test("TensorBoardWriter writes records and events TensorBoard reads", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const before = Date.now() / 1000;
    const writer = await TensorBoardWriter.create(dir);
    const scalars: [string, number, number][] = [
      ["train/loss", 2.302585, 1],
      ["train/loss", 0.4, 20],
      ["train/learning_rate", 0.03, 20],
      ["test/accuracy", 0.9924, 938],
      ["train/loss", NaN, 21],
    ];
    for (const [tag, value, step] of scalars) writer.scalar(tag, value, step);
    const grey = await encodePng(new Uint8Array(28 * 28).map((_, i) => i % 256), 28, 28);
    const rgb = await encodePng(new Uint8Array(3 * 2 * 3).fill(200), 3, 2, { channels: 3 });
    writer.image("test/digit", grey, 938);
    writer.image("test/colour", rgb, 2 ** 40); // an int64 step beyond 32 bits
    await writer.close();
    const after = Date.now() / 1000;

    const { name, bytes } = await eventFile(dir);
    assert.equal(writer.path, `${dir}/${name}`);
    const [, seconds] = name.match(/^events\.out\.tfevents\.(\d+)\.[A-Za-z0-9._-]+$/) ?? [];
    assert.ok(Number(seconds) >= Math.floor(before) && Number(seconds) <= after, name);

    const events = readEvents(bytes);
    assert.equal(events.length, 1 + scalars.length + 2);
    const [first, ...rest] = events;
    assert.equal(first.file_version, "brain.Event:2");
    assert.equal(first.summary, undefined);
    for (const event of events) {
      assert.ok(event.wall_time! >= before && event.wall_time! <= after, `${event.wall_time}`);
    }
    assert.deepEqual(
      rest.slice(0, scalars.length).map((e) => [
        e.summary!.value[0].tag,
        e.summary!.value[0].simple_value,
        e.step,
      ]),
      scalars.map(([tag, value, step]) => [tag, Math.fround(value), step]), // float32 simple_value
    );
    const images = rest.slice(scalars.length).map((e) => ({
      ...e.summary!.value[0],
      step: e.step,
    }));
    assert.deepEqual(images.map((v) => [v.tag, v.step]), [["test/digit", 938], [
      "test/colour",
      2 ** 40,
    ]]);
    const [digit, colour] = images.map((v) => v.image!);
    assert.deepEqual([digit.width, digit.height, digit.colorspace], [28, 28, 1]);
    assert.deepEqual([colour.width, colour.height, colour.colorspace], [3, 2, 3]);
    const png = new Uint8Array(digit.encoded_image_string);
    assert.deepEqual([...png.subarray(0, 8)], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
    assert.deepEqual(png, grey);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("the reader notices a truncated or altered file", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const writer = await TensorBoardWriter.create(dir);
    writer.scalar("loss", 1, 1);
    await writer.close();
    const { bytes } = await eventFile(dir);
    assert.equal(readRecords(bytes).length, 2);
    assert.throws(() => readRecords(bytes.slice(0, -1)), /truncated record/);
    const altered = bytes.slice();
    altered[altered.length - 6] ^= 1; // a bit of the last record's data
    assert.throws(() => readRecords(altered), /bad data CRC/);
    const longer = bytes.slice();
    longer[0] ^= 1; // the first record's length
    assert.throws(() => readRecords(longer), /bad length CRC/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("TensorBoardWriter.flush() appends what is queued, in order", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await using writer = await TensorBoardWriter.create(dir);
    assert.equal(readEvents(await Deno.readFile(writer.path)).length, 1); // file_version at once
    writer.scalar("a", 1, 1);
    assert.equal(readEvents(await Deno.readFile(writer.path)).length, 1); // queued, not written
    const first = writer.flush();
    writer.scalar("a", 2, 2);
    await Promise.all([writer.flush(), first]);
    const steps = readEvents(await Deno.readFile(writer.path)).slice(1).map((e) => e.step);
    assert.deepEqual(steps, [1, 2]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("two writers in one folder get files of their own", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const writers = await Promise.all([1, 2, 3].map(() => TensorBoardWriter.create(`${dir}/run`)));
    await Promise.all(writers.map((w) => w.close()));
    assert.equal(new Set(writers.map((w) => w.path)).size, 3);
    const names = await Array.fromAsync(Deno.readDir(`${dir}/run`));
    assert.equal(names.length, 3);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("TensorBoardWriter refuses bad arguments with named errors", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await assert.rejects(() => TensorBoardWriter.create(""), {
      name: "TypeError",
      message: "Cannot create TensorBoard log: expected dir to be a non-empty string, got string",
    });
    const writer = await TensorBoardWriter.create(dir);
    const png = await encodePng(new Uint8Array(4), 2, 2);
    const cases: [() => void, string, string][] = [
      [
        () => writer.scalar("", 1, 0),
        "TypeError",
        'Cannot log scalar "": expected tag to be a non-empty string, got string',
      ],
      [
        () => writer.scalar("loss", "1" as unknown as number, 0),
        "TypeError",
        'Cannot log scalar "loss": expected value to be a number, got string',
      ],
      [
        () => writer.scalar("loss", 1, -1),
        "RangeError",
        'Cannot log scalar "loss": expected step to be an integer >= 0, got -1',
      ],
      [
        () => writer.scalar("loss", 1, 1.5),
        "RangeError",
        'Cannot log scalar "loss": expected step to be an integer >= 0, got 1.5',
      ],
      [
        () => writer.image("digit", png.slice(0, 20), 0),
        "ImageFormatError",
        'Cannot log image "digit": expected a PNG file (signature and IHDR chunk, 33 bytes or more), got 20 bytes starting 89 50 4e 47 0d 0a 1a 0a',
      ],
      [
        () => writer.image("digit", new TextEncoder().encode("GIF89a".padEnd(40)), 0),
        "ImageFormatError",
        'Cannot log image "digit": expected a PNG file (signature and IHDR chunk, 33 bytes or more), got 40 bytes starting 47 49 46 38 39 61 20 20',
      ],
      [
        () => writer.image("digit", [1, 2] as unknown as Uint8Array, 0),
        "TypeError",
        'Cannot log image "digit": expected png to be a Uint8Array, got Array',
      ],
    ];
    for (const [call, name, message] of cases) assert.throws(call, { name, message });
    assert.throws(() => writer.image("digit", new Uint8Array(), 0), ImageFormatError);
    await writer.close();
    await writer.close(); // twice: nothing happens
    assert.throws(() => writer.scalar("loss", 1, 2), {
      name: "Error",
      message: 'Cannot log scalar "loss": expected an open writer, got one closed by close()',
    });
    // Nothing refused reached the file.
    assert.equal(readEvents(await Deno.readFile(writer.path)).length, 1);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
