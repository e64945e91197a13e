// Model output is untrusted text. It reaches the page only as text nodes: the light
// formatting here (paragraphs, fenced code blocks, `inline code`, **bold**) uses elements
// this file creates and fills with text, so "<img src=x onerror=...>" in an answer is shown
// as those characters and never parsed as HTML. (The page's CSP enforces Trusted Types too,
// so an HTML sink such as innerHTML would throw rather than parse.)

const FENCE = /^ {0,3}(`{3,}|~{3,})\s*([^\s`]*)/;
const INLINE = /(`+)([^`]+?)\1|\*\*(?=\S)([^*]+?)\*\*/g;

/**
 * Split text into blocks: {kind: "p" | "code", text, lang, start}, where `start` is the
 * offset of the block's first line in `text`. A block before the last one is final: only a
 * blank line or a fence line can end a block, and text appended later cannot change them.
 */
export function splitBlocks(text) {
  const blocks = [];
  let code = null; // the open code block, if any
  let para = null; // the open paragraph, if any
  let offset = 0;
  for (const rawLine of text.split("\n")) {
    const start = offset;
    offset += rawLine.length + 1;
    const line = rawLine.endsWith("\r") ? rawLine.slice(0, -1) : rawLine;
    const fence = FENCE.exec(line);
    if (code) {
      const closing = fence && fence[1][0] === code.fence[0] && fence[1].length >= code.fence.length
        && line.trim() === fence[1];
      if (closing) code = null;
      else code.lines.push(line);
      continue;
    }
    if (fence) {
      para = null;
      code = { kind: "code", lang: fence[2], fence: fence[1], lines: [], start };
      blocks.push(code);
      continue;
    }
    if (line.trim() === "") {
      para = null;
      continue;
    }
    if (!para) {
      para = { kind: "p", lang: "", lines: [], start };
      blocks.push(para);
    }
    para.lines.push(line);
  }
  return blocks.map((b) => ({ kind: b.kind, lang: b.lang, text: b.lines.join("\n"), start: b.start }));
}

/** Fill `el` with `text`, `inline code` and **bold** spans, all as text nodes. */
function fillInline(el, text) {
  el.replaceChildren();
  let last = 0;
  for (const match of text.matchAll(INLINE)) {
    if (match.index > last) el.append(document.createTextNode(text.slice(last, match.index)));
    const span = document.createElement(match[2] !== undefined ? "code" : "strong");
    span.textContent = match[2] !== undefined ? match[2] : match[3];
    el.append(span);
    last = match.index + match[0].length;
  }
  if (last < text.length) el.append(document.createTextNode(text.slice(last)));
}

function build(block) {
  if (block.kind === "code") {
    const pre = document.createElement("pre");
    pre.className = "code-block";
    // Shown by CSS `content: attr(data-lang)`: still text, never markup.
    if (block.lang) pre.dataset.lang = block.lang;
    pre.append(document.createElement("code"));
    fill(pre, block);
    return pre;
  }
  const p = document.createElement("p");
  fill(p, block);
  return p;
}

function fill(el, block) {
  if (block.kind === "code") el.firstChild.textContent = block.text;
  else fillInline(el, block.text);
}

/** Renders a growing answer into `container`, touching only the blocks that changed. */
export class TextRenderer {
  constructor(container) {
    this.container = container;
    this.text = "";
    this.settled = 0; // offset in `text` where the blocks that may still change begin
    this.live = []; // [{kind, lang, text, el}] for the blocks from `settled` on
  }

  append(delta) {
    this.text += delta;
    this.render();
  }

  render() {
    const blocks = splitBlocks(this.text.slice(this.settled));
    blocks.forEach((block, i) => {
      const cur = this.live[i];
      if (cur && cur.kind === block.kind && cur.lang === block.lang) {
        if (cur.text !== block.text) {
          fill(cur.el, block);
          cur.text = block.text;
        }
        return;
      }
      const el = build(block);
      if (cur) cur.el.replaceWith(el);
      else this.container.append(el);
      this.live[i] = { kind: block.kind, lang: block.lang, text: block.text, el };
    });
    for (const gone of this.live.splice(blocks.length)) gone.el.remove();
    if (blocks.length > 1) {
      // Everything before the last block is final: parse only from there next time.
      this.settled += blocks[blocks.length - 1].start;
      this.live = this.live.slice(-1);
    }
  }
}
