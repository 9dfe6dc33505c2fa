/*
 * The periodic task form's parameters (templates/admin/scheduler/periodictask/change_form.html):
 * inputs built from the chosen catalog task's JSON Schema (param_inputs.js), checked as staff
 * type by the server's own validation (the admin's params-check endpoint runs what saving runs),
 * and written into the kwargs JSON textarea, which is what the form saves. The server stays the
 * judge: these inputs only write JSON. Without this script the textarea works alone.
 *
 * Data only ever reaches the DOM as text (textContent, attributes): never as HTML.
 */
import { el, readJson } from "../lib/dom.js";
import { parameterInput } from "./param_inputs.js";

// Long enough to wait for the end of a word, short enough to feel immediate.
const CHECK_DELAY_MS = 250;
const UNCHECKED = "The parameters could not be checked now; saving checks them.";

// --- The form ------------------------------------------------------------------------------------

function parametersForm({ schemas, checkUrl, serverErrors }) {
  const form = document.getElementById("periodictask_form");
  const textarea = document.getElementById("id_kwargs");
  const taskSelect = document.getElementById("id_task");
  const jsonRow = textarea && textarea.closest(".form-row");
  if (!form || !textarea || !taskSelect || !jsonRow) return; // read-only: nothing to type into

  const note = el("p", { class: "help" });
  const toggle = el("button", { type: "button", class: "button", id: "scheduler-params-toggle" });
  const general = el("ul", { class: "errorlist", id: "scheduler-params-errors" });
  const fieldsBox = el("div", { id: "scheduler-params-fields" });
  const box = el(
    "div",
    { id: "scheduler-params" },
    el("div", { class: "form-row scheduler-params-head" }, note, toggle),
    general,
    fieldsBox,
  );
  jsonRow.before(box);

  let inputs = [];
  let mode = "fields";
  let checkTimer = null;
  let checks = 0;
  let task = taskSelect.value;

  const csrf = () => (form.querySelector("input[name=csrfmiddlewaretoken]") || {}).value || "";

  /** The textarea's JSON: `{value}`, or `{error}` when it cannot be read. */
  function parsedJson() {
    try {
      return { value: JSON.parse(textarea.value.trim() || "{}") };
    } catch (error) {
      return { error: `malformed JSON: ${error.message}` };
    }
  }

  /** The textarea's JSON if it is an object (the only kind fields can show), else null. */
  function currentJson() {
    const { value } = parsedJson();
    return value && typeof value === "object" && !Array.isArray(value) ? value : null;
  }

  function fromInputs() {
    const params = {};
    for (const input of inputs) {
      const { present, value } = input.read();
      if (present) params[input.name] = value;
    }
    return params;
  }

  function showGeneral(messages) {
    general.replaceChildren(...messages.map((message) => el("li", { text: message })));
  }

  /** Messages by parameter (dotted paths, as the server gives them) next to their inputs; the
   * rest (the whole object, an unknown parameter, the task) above them. */
  function showErrors(errors, { always = false } = {}) {
    const byInput = new Map(inputs.map((input) => [input.name, []]));
    const rest = [];
    for (const [path, messages] of Object.entries(errors.params || {})) {
      const [head, ...tail] = path.split(".");
      if (mode === "fields" && byInput.has(head)) {
        // "agents.1" is the second line of the agents' box.
        const line = /^\d+$/.test(tail[0] || "") ? `line ${Number(tail[0]) + 1}` : tail.join(".");
        byInput.get(head).push(...messages.map((message) => (line ? `${line}: ${message}` : message)));
      } else {
        rest.push(...messages.map((message) => (path === "params" ? message : `${path}: ${message}`)));
      }
    }
    for (const [field, messages] of Object.entries(errors)) {
      if (field === "params" && !Array.isArray(messages)) continue;
      const list = Array.isArray(messages) ? messages : [String(messages)];
      rest.push(...list.map((message) => (field === "detail" ? message : `${field}: ${message}`)));
    }
    for (const input of inputs) input.showErrors(byInput.get(input.name), { always });
    showGeneral(rest);
  }

  async function check() {
    let params = {};
    if (mode === "fields") params = fromInputs();
    else {
      const json = parsedJson();
      if (json.error) {
        showErrors({ params: { params: [json.error] } });
        return;
      }
      params = json.value; // not an object: the server says so, as saving would
    }
    if (!task) return;
    checks += 1;
    const mine = checks;
    let status = 0;
    let body = null;
    try {
      const response = await fetch(checkUrl, {
        method: "POST",
        credentials: "same-origin",
        headers: { Accept: "application/json", "Content-Type": "application/json", "X-CSRFToken": csrf() },
        body: JSON.stringify({ task, params }),
      });
      status = response.status;
      body = await response.json().catch(() => null);
    } catch (error) {
      body = null; // the server is out of reach: saving will say what is wrong, if anything
    }
    if (mine !== checks) return; // a later check was sent: its answer wins
    if (status === 200) showErrors({});
    else if (status === 400 && body) showErrors(body);
    else showErrors({ detail: body && body.detail ? body.detail : UNCHECKED });
  }

  function scheduleCheck() {
    clearTimeout(checkTimer);
    checkTimer = setTimeout(check, CHECK_DELAY_MS);
  }

  /** The inputs, written to the textarea the form saves. */
  function writeJson() {
    if (mode !== "fields" || !(task in schemas)) return;
    textarea.value = JSON.stringify(fromInputs(), null, 2);
  }

  function onInput() {
    writeJson();
    scheduleCheck();
  }

  /** Inputs for the task's parameters, filled from `values`; the names that did not fit. */
  function build(values) {
    const schema = schemas[task] || {};
    const properties = schema.properties || {};
    const required = new Set(schema.required || []);
    inputs = Object.entries(properties).map(([name, property]) =>
      parameterInput({ name, property, root: schema, required: required.has(name), onInput }),
    );
    fieldsBox.replaceChildren(...inputs.map((input) => input.row));
    const misfits = [];
    for (const input of inputs) if (!input.write(values[input.name])) misfits.push(input.name);
    const unknown = Object.keys(values).filter((name) => !(name in properties));
    // A schema that takes more than its named properties is free-form: keep the JSON.
    const open = schema.additionalProperties !== false && schema.additionalProperties !== undefined;
    if (open) misfits.push("(other parameters)");
    return [...misfits, ...unknown];
  }

  function setMode(next, reason = "") {
    mode = next;
    const known = task in schemas;
    const hasParams = known && Object.keys(schemas[task].properties || {}).length > 0;
    jsonRow.hidden = mode === "fields" && known;
    fieldsBox.hidden = mode !== "fields";
    toggle.hidden = !known || !hasParams;
    toggle.textContent = mode === "fields" ? "Edit as JSON" : "Edit as fields";
    if (!task) note.textContent = "Choose a task to see the parameters it takes.";
    else if (!known) note.textContent = "This task is outside the catalog: its parameters are JSON.";
    else if (!hasParams) note.textContent = "This task takes no parameters.";
    else if (mode === "json") note.textContent = reason || "The parameters as a JSON object.";
    else note.textContent = "Checked as you type; saving checks them again.";
  }

  /** Fields for the chosen task from the JSON; JSON when the values do not fit fields. */
  function showTask(values) {
    const misfits = build(values || {});
    if (misfits.length) {
      setMode("json", `These parameters do not fit the fields: ${misfits.join(", ")}. Edit them as JSON.`);
    } else {
      setMode("fields");
      writeJson();
    }
  }

  toggle.addEventListener("click", () => {
    if (mode === "fields") {
      writeJson();
      for (const input of inputs) input.showErrors([]);
      setMode("json");
      scheduleCheck();
      return;
    }
    const values = currentJson();
    if (values === null) {
      setMode("json", "The JSON is not an object: correct it before editing it as fields.");
      return;
    }
    showTask(values);
    scheduleCheck();
  });

  textarea.addEventListener("input", () => {
    if (mode === "json") scheduleCheck();
  });

  taskSelect.addEventListener("change", () => {
    // The values of the parameters the two tasks share are kept; the others dropped.
    const before = mode === "fields" && task in schemas ? fromInputs() : currentJson() || {};
    task = taskSelect.value;
    const properties = (schemas[task] || {}).properties || {};
    const kept = Object.fromEntries(Object.entries(before).filter(([name]) => name in properties));
    showErrors({});
    if (task in schemas) {
      textarea.value = JSON.stringify(kept, null, 2);
      showTask(kept);
      if (task) scheduleCheck();
    } else {
      setMode("json");
    }
  });

  // Written before the form is sent, whatever the last input event was.
  form.addEventListener("submit", writeJson);

  const initial = currentJson();
  if (!(task in schemas)) {
    setMode("json");
  } else if (initial === null) {
    setMode("json", "The JSON is not an object: correct it to edit the parameters as fields.");
  } else {
    showTask(initial);
  }
  // The saved form's own errors, by parameter: shown where staff look after a refused save.
  if (mode === "fields" && Object.keys(serverErrors).length) showErrors({ params: serverErrors }, { always: true });
  form.dataset.paramsReady = "true";
}

parametersForm({
  schemas: readJson("scheduler-params-schemas") || {},
  checkUrl: readJson("scheduler-params-check-url"),
  serverErrors: readJson("scheduler-param-errors") || {},
});
