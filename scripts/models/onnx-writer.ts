/**
 * Writes an ONNX model (a ModelProto, protobuf wire format) from plain TypeScript, so the repo
 * trains and exports its model without Python or a new dependency. Only the messages and fields
 * a small feed-forward graph needs are encoded; the field numbers are those of onnx/onnx.proto
 * (ModelProto.ir_version = 1, .producer_name = 2, .doc_string = 6, .graph = 7, .opset_import = 8,
 * .metadata_props = 14; GraphProto.node = 1, .name = 2, .initializer = 5, .input = 11,
 * .output = 12; NodeProto.input = 1, .output = 2, .name = 3, .op_type = 4, .attribute = 5;
 * AttributeProto.name = 1, .f = 2, .i = 3, .ints = 8, .type = 20; TensorProto.dims = 1,
 * .data_type = 2, .name = 8, .raw_data = 9; ValueInfoProto.name = 1, .type = 2;
 * TypeProto.tensor_type = 1; TypeProto.Tensor.elem_type = 1, .shape = 2;
 * TensorShapeProto.dim = 1; Dimension.dim_value = 1, .dim_param = 2). ONNX Runtime parses and
 * checks the result when it creates a session, which is what the tests do.
 */

/** ONNX TensorProto.DataType values used here. */
export const FLOAT = 1;
export const INT64 = 7;
export const BOOL = 9;

class Writer {
  private readonly chunks: Buffer[] = [];

  varint(value: number | bigint): this {
    let v = BigInt.asUintN(64, BigInt(value));
    const bytes: number[] = [];
    do {
      let b = Number(v & 0x7fn);
      v >>= 7n;
      if (v !== 0n) b |= 0x80;
      bytes.push(b);
    } while (v !== 0n);
    this.chunks.push(Buffer.from(bytes));
    return this;
  }

  private tag(field: number, wire: 0 | 2 | 5): this {
    return this.varint((field << 3) | wire);
  }

  int(field: number, value: number | bigint): this {
    return this.tag(field, 0).varint(value);
  }

  float(field: number, value: number): this {
    const b = Buffer.alloc(4);
    b.writeFloatLE(value);
    this.tag(field, 5);
    this.chunks.push(b);
    return this;
  }

  bytes(field: number, value: Uint8Array): this {
    this.tag(field, 2).varint(value.length);
    this.chunks.push(Buffer.from(value));
    return this;
  }

  string(field: number, value: string): this {
    return this.bytes(field, Buffer.from(value, 'utf8'));
  }

  message(field: number, build: (w: Writer) => void): this {
    const inner = new Writer();
    build(inner);
    return this.bytes(field, inner.done());
  }

  done(): Buffer {
    return Buffer.concat(this.chunks);
  }
}

export type Attribute = { name: string } & ({ f: number } | { i: number } | { ints: number[] });

export interface Node {
  op: string;
  inputs: string[];
  outputs: string[];
  attributes?: Attribute[];
}

export type Initializer = { name: string; dims: number[] } & ({ float: Float32Array | number[] } | { int64: number[] });

export interface ValueInfo {
  name: string;
  elemType: number;
  /** A number is a fixed size, a string a symbolic one (e.g. the batch). */
  shape: Array<number | string>;
}

export interface Graph {
  name: string;
  nodes: Node[];
  initializers: Initializer[];
  inputs: ValueInfo[];
  outputs: ValueInfo[];
}

export interface ModelOptions {
  opset: number;
  irVersion: number;
  producer: string;
  doc: string;
  metadata: Record<string, string>;
}

function attribute(w: Writer, a: Attribute): void {
  w.string(1, a.name);
  if ('f' in a) w.float(2, a.f).int(20, 1);
  else if ('i' in a) w.int(3, a.i).int(20, 2);
  else {
    for (const v of a.ints) w.int(8, v);
    w.int(20, 7);
  }
}

function tensor(w: Writer, t: Initializer): void {
  for (const d of t.dims) w.int(1, d);
  if ('float' in t) {
    w.int(2, FLOAT).string(8, t.name);
    const data = Float32Array.from(t.float);
    w.bytes(9, new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
  } else {
    w.int(2, INT64).string(8, t.name);
    const data = BigInt64Array.from(t.int64.map((v) => BigInt(v)));
    w.bytes(9, new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
  }
}

function valueInfo(w: Writer, v: ValueInfo): void {
  w.string(1, v.name);
  w.message(2, (type) =>
    type.message(1, (tt) => {
      tt.int(1, v.elemType);
      tt.message(2, (shape) => {
        for (const d of v.shape) shape.message(1, (dim) => (typeof d === 'number' ? dim.int(1, d) : dim.string(2, d)));
      });
    }),
  );
}

/** The serialised ModelProto. */
export function encodeModel(graph: Graph, opts: ModelOptions): Buffer {
  const w = new Writer();
  w.int(1, opts.irVersion);
  w.string(2, opts.producer);
  w.string(6, opts.doc);
  w.message(7, (g) => {
    graph.nodes.forEach((n, i) =>
      g.message(1, (nw) => {
        for (const x of n.inputs) nw.string(1, x);
        for (const y of n.outputs) nw.string(2, y);
        nw.string(3, `${n.op.toLowerCase()}_${i}`);
        nw.string(4, n.op);
        for (const a of n.attributes ?? []) nw.message(5, (aw) => attribute(aw, a));
      }),
    );
    g.string(2, graph.name);
    for (const t of graph.initializers) g.message(5, (tw) => tensor(tw, t));
    for (const v of graph.inputs) g.message(11, (vw) => valueInfo(vw, v));
    for (const v of graph.outputs) g.message(12, (vw) => valueInfo(vw, v));
  });
  w.message(8, (o) => o.string(1, '').int(2, opts.opset));
  for (const [key, value] of Object.entries(opts.metadata)) w.message(14, (m) => m.string(1, key).string(2, value));
  return w.done();
}
