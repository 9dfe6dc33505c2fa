/*
 * One input per catalog task parameter, chosen from its JSON Schema (pydantic's): a select for an
 * enum, a checkbox for a boolean, a number input, a datetime-local input, one line per item for a
 * list of strings or numbers, a text input, and a JSON box only where the schema is free-form.
 * Used by params.js, the periodic task form's module.
 *
 * Data only ever reaches the DOM as text (textContent, attributes): never as HTML.
 */
import { el } from "../lib/dom.js";

// Strings that may be longer than this get a textarea.
const LONG_STRING = 255;
const LISTED = new Set(["string", "integer", "number"]);
const NUMBER = /^-?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?$/;

// --- Reading a property's schema -----------------------------------------------------------------

const without = (object, ...keys) => Object.fromEntries(Object.entries(object).filter(([key]) => !keys.includes(key)));

/** The schema itself where it points elsewhere: pydantic writes enums and models once, in $defs. */
function resolved(schema, root) {
  let node = schema || {};
  for (let hops = 0; typeof node.$ref === "string" && hops < 10; hops += 1) {
    const target = (root.$defs || {})[node.$ref.replace(/^#\/\$defs\//, "")] || {};
    node = { ...target, ...without(node, "$ref") };
  }
  return node;
}

/** The kind of input a property gets, the schema that kind reads, and whether null is allowed
 * (pydantic writes `int | None` as anyOf [integer, null]). Anything else is free-form JSON. */
export function describe(property, root) {
  let schema = resolved(property, root);
  let nullable = false;
  const union = schema.anyOf || schema.oneOf;
  if (Array.isArray(union)) {
    const options = union.map((option) => resolved(option, root));
    const others = options.filter((option) => option.type !== "null");
    nullable = others.length < options.length;
    if (others.length !== 1) return { kind: "json", schema, nullable };
    schema = { ...others[0], ...without(schema, "anyOf", "oneOf") };
  }
  if (Array.isArray(schema.type)) {
    const types = schema.type.filter((type) => type !== "null");
    nullable = nullable || types.length < schema.type.length;
    if (types.length !== 1) return { kind: "json", schema, nullable };
    schema = { ...schema, type: types[0] };
  }
  const plain = (value) => value === null || typeof value !== "object";
  if (Array.isArray(schema.enum) && schema.enum.every(plain)) {
    return { kind: "enum", schema, nullable: nullable || schema.enum.includes(null) };
  }
  if ("const" in schema && plain(schema.const)) {
    return { kind: "enum", schema: { ...schema, enum: [schema.const] }, nullable };
  }
  if (schema.type === "boolean") return { kind: "boolean", schema, nullable };
  if (schema.type === "integer" || schema.type === "number") return { kind: "number", schema, nullable };
  if (schema.type === "string") {
    return { kind: schema.format === "date-time" ? "datetime" : "string", schema, nullable };
  }
  if (schema.type === "array") {
    const items = resolved(schema.items, root);
    if (LISTED.has(items.type) && !items.enum) return { kind: "list", schema, items, nullable };
  }
  return { kind: "json", schema, nullable };
}

// --- Help: the schema's limits in words ----------------------------------------------------------

/** "low to high", or each bound that is set ("more than low", "at most high"). */
function bounds({ low, lowOpen = false, high, highOpen = false, unit = "" }) {
  if (low !== undefined && high !== undefined && !lowOpen && !highOpen) return [`${low} to ${high}${unit}`];
  const notes = [];
  if (low !== undefined) notes.push(`${lowOpen ? "more than" : "at least"} ${low}${unit}`);
  if (high !== undefined) notes.push(`${highOpen ? "less than" : "at most"} ${high}${unit}`);
  return notes;
}

function constraints(schema, lines = false) {
  const notes = bounds({
    low: schema.minimum ?? schema.exclusiveMinimum,
    lowOpen: schema.minimum === undefined && schema.exclusiveMinimum !== undefined,
    high: schema.maximum ?? schema.exclusiveMaximum,
    highOpen: schema.maximum === undefined && schema.exclusiveMaximum !== undefined,
  });
  notes.push(...bounds({ low: schema.minLength || undefined, high: schema.maxLength, unit: " characters" }));
  if (schema.pattern) notes.push(`matching ${schema.pattern}`);
  if (lines && schema.minItems === 1 && schema.maxItems === undefined) notes.push("at least one line");
  else if (lines) notes.push(...bounds({ low: schema.minItems || undefined, high: schema.maxItems, unit: " lines" }));
  return notes;
}

const shown = (value) => (typeof value === "string" ? value : JSON.stringify(value));
const sentence = (notes) => (notes.length ? `${notes.join(", ").replace(/^./, (c) => c.toUpperCase())}.` : "");

function browserZone() {
  try {
    return Intl.DateTimeFormat().resolvedOptions().timeZone || "";
  } catch (error) {
    return "";
  }
}

function helpText({ kind, schema, items, property, required }) {
  const help = [property.description || schema.description || ""];
  if (kind === "list") {
    help.push(sentence(["one per line", ...constraints(schema, true)]));
    help.push(sentence(constraints(items).map((note) => `each ${note}`)));
  } else help.push(sentence(constraints(schema)));
  if (kind === "datetime") help.push(`In your time zone${browserZone() ? `, ${browserZone()}` : ""}.`);
  if (kind === "json") help.push("As JSON.");
  if (kind === "boolean") return help;
  if ("default" in property) {
    const value = property.default;
    help.push(value === null ? "Leave it empty for the default." : `Leave it empty for the default: ${shown(value)}.`);
  } else if (!required) help.push("Optional.");
  return help;
}

// --- Values between inputs and JSON --------------------------------------------------------------

/** A typed number as JSON: a number when it is one (and, whole, one JavaScript holds exactly),
 * else the text itself, which the server refuses with the message it gives everyone. */
function numberFrom(text, type) {
  const trimmed = text.trim();
  if (!NUMBER.test(trimmed)) return trimmed;
  const value = Number(trimmed);
  return type === "integer" && Number.isInteger(value) && !Number.isSafeInteger(value) ? trimmed : value;
}

const pad = (number) => String(number).padStart(2, "0");

/** An ISO time as a datetime-local input shows it: in the browser's zone; null if unreadable. */
function localInputValue(iso) {
  const at = new Date(iso);
  if (Number.isNaN(at.getTime())) return null;
  const day = `${at.getFullYear()}-${pad(at.getMonth() + 1)}-${pad(at.getDate())}`;
  return `${day}T${pad(at.getHours())}:${pad(at.getMinutes())}:${pad(at.getSeconds())}`;
}

const empty = (value) => value === undefined || value === null;

// Each kind's input: `read()` gives `{present, value}` (absent: the task's default applies), and
// `write(value)` fills it, false when the value cannot be shown in it (the form keeps the JSON).
const WIDGETS = {
  choice({ id, kind, schema, property, required }) {
    const values = kind === "enum" ? schema.enum.filter((value) => value !== null) : [true, false];
    const fallback = "default" in property && property.default !== null ? `: ${shown(property.default)}` : "";
    const blank = "default" in property || !required ? `(default${fallback})` : "---------";
    const input = el(
      "select",
      { id },
      el("option", { value: "", text: blank }),
      ...values.map((value, index) => el("option", { value: String(index), text: String(value) })),
    );
    return {
      input,
      event: "change",
      read: () => (input.value === "" ? { present: false } : { present: true, value: values[Number(input.value)] }),
      write(value) {
        if (!empty(value) && !values.includes(value)) return false;
        input.value = empty(value) ? "" : String(values.indexOf(value));
        return true;
      },
    };
  },
  boolean({ id, property }) {
    const input = el("input", { type: "checkbox", id });
    return {
      input,
      event: "change",
      read: () => ({ present: true, value: input.checked }),
      write(value) {
        if (value !== undefined && typeof value !== "boolean") return false;
        input.checked = value === undefined ? property.default === true : value;
        return true;
      },
    };
  },
  number({ id, schema, property }) {
    const input = el("input", {
      type: "number",
      id,
      step: schema.type === "integer" ? "1" : "any",
      min: schema.minimum,
      max: schema.maximum,
      placeholder: empty(property.default) ? null : String(property.default),
    });
    const fits = (value) => typeof value === "number" && (schema.type === "number" || Number.isInteger(value));
    return {
      input,
      event: "input",
      read() {
        // What a number input cannot hold ("1e") reads as "" flagged as bad input: sent as
        // empty text, which the server refuses as not a number.
        if (input.validity.badInput) return { present: true, value: "" };
        return input.value === "" ? { present: false } : { present: true, value: numberFrom(input.value, schema.type) };
      },
      write(value) {
        if (!empty(value) && !fits(value)) return false;
        input.value = empty(value) ? "" : String(value);
        return true;
      },
    };
  },
  datetime({ id }) {
    const input = el("input", { type: "datetime-local", id, step: "1" });
    return {
      input,
      event: "input",
      read() {
        if (input.value === "") return { present: false };
        const at = new Date(input.value); // read in the browser's zone, sent in UTC
        return { present: true, value: Number.isNaN(at.getTime()) ? input.value : at.toISOString() };
      },
      write(value) {
        const local = typeof value === "string" ? localInputValue(value) : null;
        if (!empty(value) && local === null) return false;
        input.value = empty(value) ? "" : local;
        return true;
      },
    };
  },
  list({ id, items }) {
    const input = el("textarea", { id, rows: "4", class: "vLargeTextField" });
    // A line holds a string that has no line break and no space at its ends to lose.
    const line = (item) => typeof item === "string" && item !== "" && item.trim() === item && !item.includes("\n");
    const fits = (item) => (items.type === "string" ? line(item) : typeof item === "number");
    return {
      input,
      event: "input",
      read() {
        const lines = input.value.split("\n").map((line) => line.trim()).filter((line) => line !== "");
        if (!lines.length) return { present: false };
        const value = items.type === "string" ? lines : lines.map((text) => numberFrom(text, items.type));
        return { present: true, value };
      },
      write(value) {
        if (!empty(value) && !(Array.isArray(value) && value.every(fits))) return false;
        input.value = empty(value) ? "" : value.join("\n");
        return true;
      },
    };
  },
  string({ id, schema, property }) {
    const long = !schema.maxLength || schema.maxLength > LONG_STRING;
    const input = long
      ? el("textarea", { id, rows: "3", class: "vLargeTextField" })
      : el("input", { type: "text", id, class: "vTextField" });
    if (typeof property.default === "string" && property.default) input.setAttribute("placeholder", property.default);
    return {
      input,
      event: "input",
      read: () => (input.value === "" ? { present: false } : { present: true, value: input.value }),
      write(value) {
        if (!empty(value) && typeof value !== "string") return false;
        input.value = empty(value) ? "" : value;
        return true;
      },
    };
  },
  json({ id }) {
    const input = el("textarea", { id, rows: "3", class: "vLargeTextField" });
    return {
      input,
      event: "input",
      read() {
        const text = input.value.trim();
        if (text === "") return { present: false };
        try {
          return { present: true, value: JSON.parse(text) };
        } catch (error) {
          // Sent as the text it is: the server's message says what the value should be.
          return { present: true, value: text, problem: `malformed JSON: ${error.message}` };
        }
      },
      write(value) {
        input.value = value === undefined ? "" : JSON.stringify(value, null, 2);
        return true;
      },
    };
  },
};

const WIDGET_OF = { enum: "choice", boolean: "boolean", number: "number", datetime: "datetime", list: "list" };

// --- One parameter -------------------------------------------------------------------------------

/** The row of one parameter: `read()`, `write(value)` (see WIDGETS), `showErrors(messages)`;
 * `onInput` is called on each change. */
export function parameterInput({ name, property, root, required, onInput }) {
  const described = describe(property, root);
  const { kind, nullable } = described;
  const id = `scheduler-param-${name}`;
  const title = property.title || described.schema.title || name;
  const widgetName = kind === "boolean" && nullable ? "choice" : WIDGET_OF[kind] || kind;
  const widget = WIDGETS[widgetName]({ ...described, id, property, required });
  const { input } = widget;
  const errors = el("ul", { class: "errorlist", id: `${id}-errors` });
  const help = helpText({ ...described, property, required }).filter(Boolean).join(" ");
  input.setAttribute("aria-describedby", `${id}-errors ${id}-help`);
  // As Django's admin lays out its own fields: a checkbox before its label, others after it.
  const line =
    widgetName === "boolean"
      ? el("div", { class: "flex-container checkbox-row" }, input, el("label", { for: id, class: "vCheckboxLabel", text: title }))
      : el(
          "div",
          { class: "flex-container" },
          el("label", { for: id, class: required ? "required" : null, text: `${title}:` }),
          input,
        );
  const row = el(
    "div",
    { class: `form-row scheduler-param field-param-${name}`, "data-param": name, "data-kind": kind },
    errors,
    line,
    el("div", { class: "help", id: `${id}-help` }, el("div", { text: help })),
  );
  // A parameter's messages show once it has been touched (or saving refused it): "Field
  // required" under every input while the first one is typed would only be noise.
  let touched = false;
  input.addEventListener(widget.event, () => {
    touched = true;
    onInput();
  });
  return {
    name,
    row,
    read: widget.read,
    write: widget.write,
    showErrors(messages, { always = false } = {}) {
      touched = touched || always;
      const problem = widget.read().problem;
      const listed = touched ? [...(problem ? [problem] : []), ...messages] : [];
      errors.replaceChildren(...listed.map((message) => el("li", { text: message })));
      row.classList.toggle("errors", listed.length > 0);
    },
  };
}
