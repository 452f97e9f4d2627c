/**
 * The parts of the service's OpenAPI document that the suites walk (the attack suites, the
 * fuzzer): its operations, their parameters and their JSON body schemas. Read from
 * GET /openapi.json, so a route added later is walked without anyone listing it.
 */

/** The JSON Schema keywords the TypeBox contract emits (and the fuzzer understands). */
export interface Schema {
  $ref?: string;
  type?: string | string[];
  properties?: Record<string, Schema>;
  required?: string[];
  additionalProperties?: boolean | Schema;
  minProperties?: number;
  maxProperties?: number;
  items?: Schema;
  minItems?: number;
  maxItems?: number;
  anyOf?: Schema[];
  oneOf?: Schema[];
  allOf?: Schema[];
  enum?: unknown[];
  const?: unknown;
  format?: string;
  pattern?: string;
  minLength?: number;
  maxLength?: number;
  minimum?: number;
  maximum?: number;
  exclusiveMinimum?: number | boolean;
  exclusiveMaximum?: number | boolean;
  multipleOf?: number;
  default?: unknown;
}

export interface OpenApiParameter {
  in: 'path' | 'query' | 'header' | 'cookie';
  name: string;
  required?: boolean;
  schema: Schema;
}

export interface OpenApiOperation {
  parameters?: OpenApiParameter[];
  requestBody?: { required?: boolean; content: Record<string, { schema: Schema }> };
}

export interface OpenApiDoc {
  paths: Record<string, Record<string, OpenApiOperation>>;
  components?: { schemas?: Record<string, Schema> };
}

export interface Operation {
  /** Upper case, as sent. */
  method: string;
  /** The OpenAPI path, with {param} placeholders. */
  path: string;
  /** "POST /v1/owners": the label requests are counted under. */
  label: string;
  params: OpenApiParameter[];
  /** Media type -> schema of the request body, when the operation documents one. */
  body: Record<string, Schema> | undefined;
}

const HTTP_METHODS = new Set(['get', 'put', 'post', 'delete', 'patch', 'head', 'options', 'trace']);

/** Every operation of the document whose path starts with `prefix` ('' for all). */
export function operationsOf(doc: OpenApiDoc, prefix = ''): Operation[] {
  const ops: Operation[] = [];
  for (const [path, methods] of Object.entries(doc.paths)) {
    if (!path.startsWith(prefix)) continue;
    for (const [method, op] of Object.entries(methods)) {
      if (!HTTP_METHODS.has(method)) continue;
      const body = op.requestBody === undefined ? undefined : Object.fromEntries(Object.entries(op.requestBody.content).map(([type, c]) => [type, c.schema]));
      ops.push({ method: method.toUpperCase(), path, label: `${method.toUpperCase()} ${path}`, params: op.parameters ?? [], body });
    }
  }
  return ops;
}

/** The schema a local $ref (#/components/schemas/X, or a bare $id) points at. */
export function resolveSchema(doc: OpenApiDoc, schema: Schema): Schema {
  let s = schema;
  for (let hops = 0; s.$ref !== undefined && hops < 16; hops++) {
    const name = s.$ref.startsWith('#/components/schemas/') ? s.$ref.slice('#/components/schemas/'.length) : s.$ref;
    const target = doc.components?.schemas?.[name];
    if (target === undefined) throw new Error(`unresolvable $ref ${s.$ref}`);
    s = target;
  }
  return s;
}
