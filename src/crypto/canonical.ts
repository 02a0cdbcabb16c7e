/**
 * JSON Canonicalization Scheme (RFC 8785): one byte string per JSON value,
 * so that signatures over JSON bodies are reproducible.
 *
 * Only values that JSON represents exactly are accepted: `null`, booleans,
 * finite numbers, well-formed strings, arrays and plain objects. Anything
 * that `JSON.stringify` would silently drop or convert (`undefined`,
 * functions, `NaN`, `Date`, `Map`, typed arrays, ...) is rejected instead,
 * because a signature must cover exactly what the caller meant.
 *
 * @module
 */

/**
 * Serializes a value as RFC 8785 canonical JSON.
 *
 * Object members are sorted by the UTF-16 code units of their names, numbers
 * use ECMAScript `Number.prototype.toString` form (`-0` becomes `0`), strings
 * use the minimal JSON escaping, and there is no whitespace.
 *
 * @param value The value to serialize.
 * @returns The canonical JSON text.
 * @throws {TypeError} If the value (or anything inside it) is not
 * representable in JSON, is a non-plain object, contains a lone surrogate,
 * or is cyclic. The message names the offending path.
 *
 * @example Usage
 * ```ts
 * import { canonicalJson } from "./canonical.ts";
 * canonicalJson({ b: 1, a: [true, null] }); // '{"a":[true,null],"b":1}'
 * ```
 */
export function canonicalJson(value: unknown): string {
  return serialize(value, "$", new Set());
}

/**
 * Serializes a value as RFC 8785 canonical JSON encoded in UTF-8. These are
 * the bytes to sign and to hash.
 *
 * @param value The value to serialize.
 * @returns The UTF-8 bytes of {@linkcode canonicalJson}.
 * @throws {TypeError} Under the same conditions as {@linkcode canonicalJson}.
 */
export function canonicalBytes(value: unknown): Uint8Array {
  return new TextEncoder().encode(canonicalJson(value));
}

function serialize(
  value: unknown,
  path: string,
  ancestors: Set<object>,
): string {
  switch (typeof value) {
    case "string":
      return serializeString(value, path);
    case "number":
      if (!Number.isFinite(value)) {
        throw unsupported(
          path,
          `the number ${value} has no JSON form`,
          "Use a finite number, or encode the value as a string.",
        );
      }
      // For finite numbers this is Number.prototype.toString, except that
      // -0 becomes "0", which is exactly what RFC 8785 requires.
      return JSON.stringify(value);
    case "boolean":
      return value ? "true" : "false";
    case "undefined":
      throw unsupported(
        path,
        "the value is undefined",
        "Omit the member or use null explicitly.",
      );
    case "bigint":
      throw unsupported(
        path,
        "bigint values have no exact JSON form",
        "Convert it to a decimal string, or to a number if it is a safe integer.",
      );
    case "function":
    case "symbol":
      throw unsupported(
        path,
        `a ${typeof value} is not data`,
        "Pass only JSON data: null, booleans, numbers, strings, arrays and plain objects.",
      );
  }
  if (value === null) return "null";
  const object = value as object;
  if (ancestors.has(object)) {
    throw unsupported(
      path,
      "the value refers back to itself",
      "Remove the cycle before canonicalizing.",
    );
  }
  ancestors.add(object);
  try {
    if (Array.isArray(object)) return serializeArray(object, path, ancestors);
    const proto = Object.getPrototypeOf(object);
    if (proto !== Object.prototype && proto !== null) {
      const name = object.constructor?.name ?? "non-plain object";
      throw unsupported(
        path,
        `a ${name} is not a plain object`,
        "Convert it to a plain object, array, string or number first.",
      );
    }
    return serializeObject(object as Record<string, unknown>, path, ancestors);
  } finally {
    ancestors.delete(object);
  }
}

function serializeArray(
  array: unknown[],
  path: string,
  ancestors: Set<object>,
): string {
  const parts: string[] = [];
  // Index loop, not map(): map() skips holes, which must be rejected.
  for (let i = 0; i < array.length; i++) {
    parts.push(serialize(array[i], `${path}[${i}]`, ancestors));
  }
  return `[${parts.join(",")}]`;
}

function serializeObject(
  object: Record<string, unknown>,
  path: string,
  ancestors: Set<object>,
): string {
  if (Object.getOwnPropertySymbols(object).length > 0) {
    throw unsupported(
      path,
      "the object has symbol-keyed members",
      "Use string keys only.",
    );
  }
  // String comparison with < is by UTF-16 code units, as RFC 8785 requires.
  const keys = Object.keys(object).sort((a, b) => a < b ? -1 : a > b ? 1 : 0);
  const parts: string[] = [];
  for (const key of keys) {
    const memberPath = `${path}[${JSON.stringify(key)}]`;
    parts.push(
      `${serializeString(key, memberPath)}:${
        serialize(object[key], memberPath, ancestors)
      }`,
    );
  }
  return `{${parts.join(",")}}`;
}

function serializeString(text: string, path: string): string {
  // RFC 8785 input must be I-JSON, which forbids lone surrogates; they would
  // not survive a round trip through UTF-8.
  if (!text.isWellFormed()) {
    throw unsupported(
      path,
      "the string contains a lone UTF-16 surrogate",
      "Make sure the text was decoded correctly; it is not valid Unicode.",
    );
  }
  return JSON.stringify(text);
}

function unsupported(path: string, problem: string, hint: string): TypeError {
  return new TypeError(`Cannot canonicalize ${path}: ${problem}. ${hint}`);
}
