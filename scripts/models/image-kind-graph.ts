/**
 * The image-kind model's ONNX graph: seven image statistics computed inside the graph from the
 * normalised RGB input, then a standardised softmax regression over them.
 *
 * Input `image` [N, 3, 64, 64], NCHW, values (v/255 - 0.5) / 0.5, so in -1..1.
 * Features, per image (means over the 64 x 64 pixels):
 *   0 chroma       mean of max(R,G,B) - min(R,G,B)            (colour at all)
 *   1 chroma2      mean of its square                          (strongly coloured pixels)
 *   2 lum_mean     mean of Y = (R+G+B)/3
 *   3 lum_std      standard deviation of Y                     (contrast)
 *   4 dark         fraction of pixels with Y < -0.6            (black film background)
 *   5 bright       fraction of pixels with Y > 0.6             (bone-bright areas)
 *   6 edges        mean |dY| between neighbours, down and across (texture, sharpness)
 * Output `probabilities` [N, 2] in the order of LABELS (radiograph, photograph).
 */
import { FLOAT, type Graph, type Initializer, type Node } from './onnx-writer.js';

export const SIDE = 64;
export const FEATURES = ['chroma', 'chroma2', 'lum_mean', 'lum_std', 'dark', 'bright', 'edges'] as const;

export interface Head {
  /** Per-feature mean and standard deviation of the training set. */
  mu: number[];
  sigma: number[];
  /** [features x labels], row-major. */
  weights: number[];
  bias: number[];
}

const f = (name: string, dims: number[], values: number[]): Initializer => ({ name, dims, float: values });
const i64 = (name: string, values: number[]): Initializer => ({ name, dims: [values.length], int64: values });

/** The graph; without a head it outputs the raw features [N, 7] (what the trainer fits on). */
export function imageKindGraph(head: Head | null, labels: readonly string[]): Graph {
  const n = (op: string, inputs: string[], outputs: string[], attributes: Node['attributes'] = []): Node => ({ op, inputs, outputs, attributes });
  const mean23 = (x: string, y: string) => n('ReduceMean', [x], [y], [{ name: 'axes', ints: [2, 3] }, { name: 'keepdims', i: 0 }]);
  const nodes: Node[] = [
    n('ReduceMax', ['image'], ['cmax'], [{ name: 'axes', ints: [1] }, { name: 'keepdims', i: 1 }]),
    n('ReduceMin', ['image'], ['cmin'], [{ name: 'axes', ints: [1] }, { name: 'keepdims', i: 1 }]),
    n('Sub', ['cmax', 'cmin'], ['chroma_px']),
    mean23('chroma_px', 'f_chroma'),
    n('Mul', ['chroma_px', 'chroma_px'], ['chroma2_px']),
    mean23('chroma2_px', 'f_chroma2'),
    n('ReduceMean', ['image'], ['lum'], [{ name: 'axes', ints: [1] }, { name: 'keepdims', i: 1 }]),
    mean23('lum', 'f_mean'),
    n('Mul', ['lum', 'lum'], ['lum2']),
    mean23('lum2', 'f_m2'),
    n('Mul', ['f_mean', 'f_mean'], ['f_mean_sq']),
    n('Sub', ['f_m2', 'f_mean_sq'], ['f_var_raw']),
    n('Relu', ['f_var_raw'], ['f_var']),
    n('Sqrt', ['f_var'], ['f_std']),
    n('Less', ['lum', 'dark_level'], ['dark_b']),
    n('Cast', ['dark_b'], ['dark_px'], [{ name: 'to', i: FLOAT }]),
    mean23('dark_px', 'f_dark'),
    n('Greater', ['lum', 'bright_level'], ['bright_b']),
    n('Cast', ['bright_b'], ['bright_px'], [{ name: 'to', i: FLOAT }]),
    mean23('bright_px', 'f_bright'),
    n('Slice', ['lum', 'one', 'side', 'axis2'], ['lum_down']),
    n('Slice', ['lum', 'zero', 'side_1', 'axis2'], ['lum_up']),
    n('Sub', ['lum_down', 'lum_up'], ['dy']),
    n('Abs', ['dy'], ['ady']),
    mean23('ady', 'f_dy'),
    n('Slice', ['lum', 'one', 'side', 'axis3'], ['lum_right']),
    n('Slice', ['lum', 'zero', 'side_1', 'axis3'], ['lum_left']),
    n('Sub', ['lum_right', 'lum_left'], ['dx']),
    n('Abs', ['dx'], ['adx']),
    mean23('adx', 'f_dx'),
    n('Add', ['f_dy', 'f_dx'], ['f_edges']),
    n('Concat', ['f_chroma', 'f_chroma2', 'f_mean', 'f_std', 'f_dark', 'f_bright', 'f_edges'], ['features'], [{ name: 'axis', i: 1 }]),
  ];
  const initializers: Initializer[] = [
    f('dark_level', [], [-0.6]),
    f('bright_level', [], [0.6]),
    i64('zero', [0]),
    i64('one', [1]),
    i64('side', [SIDE]),
    i64('side_1', [SIDE - 1]),
    i64('axis2', [2]),
    i64('axis3', [3]),
  ];
  const k = FEATURES.length;
  if (head !== null) {
    nodes.push(
      n('Sub', ['features', 'mu'], ['centred']),
      n('Div', ['centred', 'sigma'], ['z']),
      n('MatMul', ['z', 'weights'], ['zw']),
      n('Add', ['zw', 'bias'], ['logits']),
      n('Softmax', ['logits'], ['probabilities'], [{ name: 'axis', i: 1 }]),
    );
    initializers.push(f('mu', [k], head.mu), f('sigma', [k], head.sigma), f('weights', [k, labels.length], head.weights), f('bias', [labels.length], head.bias));
  }
  return {
    name: head === null ? 'image_kind_features' : 'image_kind',
    nodes,
    initializers,
    inputs: [{ name: 'image', elemType: FLOAT, shape: ['batch', 3, SIDE, SIDE] }],
    outputs: head === null ? [{ name: 'features', elemType: FLOAT, shape: ['batch', k] }] : [{ name: 'probabilities', elemType: FLOAT, shape: ['batch', labels.length] }],
  };
}
