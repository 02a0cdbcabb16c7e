/**
 * Safe HTML building for the fleet server's pages: the {@link markup}
 * tagged template escapes every interpolated value unless it is itself the
 * output of {@link markup}, so a value reported by an envoy can never
 * become markup.
 *
 * ```ts
 * const cell = markup`<td title="${key}">${handle}</td>`;
 * const list = markup`<ul>${items.map((i) => markup`<li>${i}</li>`)}</ul>`;
 * ```
 *
 * (The tag is not called `html` because `deno fmt` reformats templates
 * tagged `html`, which would change the whitespace of the output.)
 *
 * Write attribute values inside double quotes, as above: {@link escapeHtml}
 * escapes both quote characters, so a value cannot leave its attribute.
 *
 * @module
 */

const SAFE = Symbol("SafeHtml");

/** Markup built by {@link markup}; nothing else can make one. */
export interface SafeHtml {
  readonly [SAFE]: true;
  /** The markup. */
  readonly text: string;
}

/**
 * What {@link markup} accepts: text and numbers (escaped), booleans
 * (`true`/`false`), null and undefined (nothing), markup from {@link markup}
 * (as is), and lists of these (concatenated).
 */
export type HtmlValue =
  | string
  | number
  | boolean
  | null
  | undefined
  | SafeHtml
  | readonly HtmlValue[];

const ENTITIES: Record<string, string> = {
  "&": "&amp;",
  "<": "&lt;",
  ">": "&gt;",
  '"': "&quot;",
  "'": "&#39;",
};

/** `text` with `&`, `<`, `>`, `"` and `'` replaced by character references. */
export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ENTITIES[c]);
}

function isSafe(value: unknown): value is SafeHtml {
  return typeof value === "object" && value !== null && SAFE in value;
}

function render(value: HtmlValue): string {
  if (value === null || value === undefined) return "";
  if (isSafe(value)) return value.text;
  if (Array.isArray(value)) return value.map(render).join("");
  return escapeHtml(String(value));
}

/**
 * A tagged template that builds {@link SafeHtml}: the literal parts are
 * kept, every interpolated value is escaped (see {@link HtmlValue}).
 */
export function markup(
  strings: TemplateStringsArray,
  ...values: HtmlValue[]
): SafeHtml {
  let text = strings[0];
  for (let i = 0; i < values.length; i++) {
    text += render(values[i]) + strings[i + 1];
  }
  return { [SAFE]: true, text };
}
