/*
 * DOM helpers every page's script shares: plain JavaScript, no build step, no remote code.
 *
 * Data only ever reaches the DOM as text (textContent, attributes): never as HTML.
 */

const SVG = "http://www.w3.org/2000/svg";

export const $ = (selector, root = document) => root.querySelector(selector);

/** Attributes from an object: `text` is the text content; null, undefined and false are left
 * out, true is an empty attribute. */
export function setAttrs(node, attrs) {
  for (const [key, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "text") node.textContent = String(value);
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  return node;
}

function build(node, attrs, children) {
  setAttrs(node, attrs);
  for (const child of children) if (child !== null && child !== undefined) node.append(child);
  return node;
}

/** el("td", {class: "num"}, "text", childNode): strings become text nodes, never HTML. */
export const el = (tag, attrs = {}, ...children) =>
  build(document.createElement(tag), attrs, children);

/** el() for SVG elements. */
export const svgEl = (tag, attrs = {}, ...children) =>
  build(document.createElementNS(SVG, tag), attrs, children);

/** The JSON a template embedded with json_script, or null if the page has none by that id. */
export function readJson(id) {
  const node = document.getElementById(id);
  return node ? JSON.parse(node.textContent) : null;
}

/** Replaces what `node` shows with `text`, and a link after it if one is given. */
export function showText(node, text, link = null) {
  node.replaceChildren(text);
  if (link) node.append(" ", el("a", { href: link.href, text: link.text }));
}
