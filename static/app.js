// The demo page: a conversation with /ai/streamChat over either transport.
// Everything the model says is added as text (see render.js); nothing here parses HTML.

import { TextRenderer } from "./render.js";
import { viaEventSource, viaFetch } from "./transports.js";

const $ = (id) => document.getElementById(id);
const ui = {
  conversation: $("conversation"),
  welcome: $("welcome"),
  form: $("composer"),
  question: $("question"),
  send: $("send"),
  stop: $("stop"),
  newChat: $("new-chat"),
  status: $("status"),
  state: $("state"),
  ttft: $("ttft"),
  rate: $("rate"),
  note: $("transport-note"),
};

const STATE_LABELS = {
  idle: "ready",
  connecting: "connecting…",
  streaming: "streaming",
  done: "done",
  stopped: "stopped",
  error: "error",
};
const END_NOTES = {
  length: "The answer was cut off at the length limit.",
  content_filter: "The answer was stopped by the content filter.",
  shutdown: "The server is shutting down; the answer was cut off.",
};

const history = []; // finished turns as {role, content}: the `messages` the fetch transport sends
let current = null; // the turn being streamed, if any

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function formatMs(ms) {
  return ms < 1000 ? `${Math.round(ms)} ms` : `${(ms / 1000).toFixed(2)} s`;
}

// --- transport choice: ?transport=eventsource|fetch, else the last one used --------------

const TRANSPORT_NOTES = {
  fetch: "fetch + ReadableStream · POST with the whole conversation",
  eventsource: "EventSource · GET with your latest question only (a GET has no body)",
};

function chosenTransport() {
  return document.querySelector('input[name="transport"]:checked').value;
}

function setTransport(value) {
  const input = document.querySelector(`input[name="transport"][value="${value}"]`);
  if (input) input.checked = true;
  ui.note.textContent = TRANSPORT_NOTES[chosenTransport()];
}

function initTransport() {
  let value = new URLSearchParams(location.search).get("transport");
  if (!value) {
    try {
      value = localStorage.getItem("transport");
    } catch {
      value = null; // storage may be blocked; the default is fine
    }
  }
  setTransport(value === "eventsource" ? "eventsource" : "fetch");
  for (const input of document.querySelectorAll('input[name="transport"]')) {
    input.addEventListener("change", () => {
      setTransport(input.value);
      try {
        localStorage.setItem("transport", input.value);
      } catch {
        // not remembered; no harm
      }
    });
  }
}

// --- scrolling: follow the answer unless the reader scrolled up --------------------------

function nearBottom() {
  const c = ui.conversation;
  return c.scrollHeight - c.scrollTop - c.clientHeight < 80;
}

function scrollToEnd() {
  ui.conversation.scrollTop = ui.conversation.scrollHeight;
}

function appendMessage(node) {
  const follow = nearBottom();
  ui.conversation.append(node);
  if (follow) scrollToEnd();
}

// --- one question and its streamed answer --------------------------------------------

class Turn {
  constructor(question, transport) {
    this.transport = transport;
    this.state = "connecting";
    this.text = "";
    this.tokens = 0;
    this.usage = null;
    this.startedAt = performance.now();
    this.firstAt = null;
    this.lastAt = null;
    this.errorShown = false;

    const user = el("article", "msg user");
    user.append(el("div", "bubble", question));
    appendMessage(user);

    this.node = el("article", "msg assistant");
    this.node.setAttribute("aria-busy", "true");
    this.answer = el("div", "answer");
    this.typing = el("div", "typing");
    this.typing.setAttribute("aria-label", "waiting for the first token");
    for (let i = 0; i < 3; i++) this.typing.append(el("span"));
    this.notes = el("div", "notes");
    this.meta = el("div", "meta");
    this.metaText = el("span", "meta-text");
    this.meta.append(el("span", "dot"), this.metaText);
    this.node.append(this.answer, this.typing, this.notes, this.meta);
    appendMessage(this.node);
    this.renderer = new TextRenderer(this.answer);
    this.setState("connecting");
  }

  setState(state) {
    this.state = state;
    this.node.dataset.state = state;
    if (state !== "connecting" && state !== "streaming") {
      this.node.removeAttribute("aria-busy");
      this.typing.remove();
    }
    this.showMetrics();
  }

  metrics() {
    const out = {};
    if (this.firstAt !== null) out.ttft = `first token ${formatMs(this.firstAt - this.startedAt)}`;
    const count = this.state === "done" && this.usage && this.usage.completion_tokens
      ? this.usage.completion_tokens : this.tokens;
    if (count >= 2 && this.lastAt > this.firstAt) {
      const rate = (count - 1) / ((this.lastAt - this.firstAt) / 1000);
      out.rate = `${rate.toFixed(rate < 10 ? 1 : 0)} tok/s`;
    }
    if (count > 0) out.count = `${count} token${count === 1 ? "" : "s"}`;
    return out;
  }

  showMetrics() {
    const m = this.metrics();
    const parts = [this.transport === "eventsource" ? "EventSource" : "fetch"];
    if (m.ttft) parts.push(m.ttft);
    if (m.rate) parts.push(m.rate);
    if (m.count) parts.push(m.count);
    this.metaText.textContent = parts.join(" · ");
    if (current === this || current === null) showStatus(this.state, m);
  }

  note(text, kind) {
    const follow = nearBottom();
    this.notes.append(el("p", `note ${kind}`, text));
    if (follow) scrollToEnd();
  }

  on(event) {
    switch (event.type) {
      case "open":
      case "start":
        if (this.state === "connecting") this.setState("streaming");
        break;
      case "update": {
        const now = performance.now();
        if (this.firstAt === null) {
          this.firstAt = now;
          this.typing.remove();
        }
        this.lastAt = now;
        this.tokens += 1;
        this.text += event.content;
        const follow = nearBottom();
        this.renderer.append(event.content);
        if (follow) scrollToEnd();
        if (this.state === "connecting") this.setState("streaming");
        else this.showMetrics();
        break;
      }
      case "error":
        this.errorShown = true;
        this.note(event.msg, "error");
        this.setState("error");
        break;
      case "end":
        this.usage = event.usage;
        if (event.reason === "cancelled") {
          this.note("Stopped.", "info");
          this.finish("stopped");
        } else if (event.reason === "error" || this.errorShown) {
          if (!this.errorShown) this.note("The answer failed.", "error");
          this.finish("error");
        } else {
          if (END_NOTES[event.reason]) this.note(END_NOTES[event.reason], "info");
          this.finish("done");
        }
        break;
      case "dropped":
        this.note("The connection to the server was lost before the answer finished.", "error");
        this.finish("error");
        break;
      case "refused":
        this.note(event.message, "error");
        this.finish("error");
        break;
      default:
        break;
    }
  }

  stop() {
    if (this.handle) this.handle.stop();
    this.note("Stopped.", "info");
    this.finish("stopped");
  }

  finish(state) {
    if (current !== this) return;
    this.setState(state);
    current = null;
    // A partial answer is still part of the conversation the model should see next time.
    if (this.text) history.push({ role: "assistant", content: this.text });
    if (this.text) this.addCopyButton();
    this.showMetrics();
    setBusy(false);
  }

  addCopyButton() {
    const button = el("button", "copy", "Copy");
    button.type = "button";
    button.addEventListener("click", async () => {
      try {
        await navigator.clipboard.writeText(this.text);
        button.textContent = "Copied";
      } catch {
        button.textContent = "Copy failed";
      }
      setTimeout(() => (button.textContent = "Copy"), 1500);
    });
    this.meta.append(button);
  }
}

// --- page state ------------------------------------------------------------------------

function showStatus(state, m = {}) {
  ui.status.dataset.state = state;
  ui.state.textContent = STATE_LABELS[state] || state;
  ui.ttft.textContent = m.ttft || "";
  ui.rate.textContent = m.rate || "";
}

function setBusy(busy) {
  ui.send.hidden = busy;
  ui.stop.hidden = !busy;
  document.body.classList.toggle("busy", busy);
  if (!busy) ui.question.focus();
}

function ask(question) {
  if (current || !question.trim()) return;
  ui.welcome.hidden = true;
  history.push({ role: "user", content: question });
  const transport = chosenTransport();
  const turn = new Turn(question, transport);
  current = turn;
  setBusy(true);
  showStatus("connecting");
  const emit = (event) => {
    if (current === turn) turn.on(event);
  };
  turn.handle = transport === "eventsource"
    ? viaEventSource(question, emit)
    : viaFetch(history.slice(), emit);
  ui.question.value = "";
  autosize();
}

function newChat() {
  if (current) current.stop();
  history.length = 0;
  for (const node of ui.conversation.querySelectorAll(".msg")) node.remove();
  ui.welcome.hidden = false;
  showStatus("idle");
  ui.question.focus();
}

function autosize() {
  const q = ui.question;
  q.style.height = "auto";
  q.style.height = `${Math.min(q.scrollHeight, 200)}px`;
}

// --- input: Enter sends, Shift+Enter is a newline, Enter while composing is the IME's ----

document.addEventListener("keydown", (event) => {
  if (event.key === "Escape" && current) current.stop();
});
ui.question.addEventListener("keydown", (event) => {
  if (event.key !== "Enter" || event.shiftKey) return;
  // During IME composition (Chinese, Japanese, ...) Enter confirms the candidate. Safari
  // reports the confirming keydown with isComposing false but keyCode 229.
  if (event.isComposing || event.keyCode === 229) return;
  event.preventDefault();
  ask(ui.question.value);
});
ui.question.addEventListener("input", autosize);
ui.form.addEventListener("submit", (event) => {
  event.preventDefault();
  ask(ui.question.value);
});
ui.stop.addEventListener("click", () => {
  if (current) current.stop();
});
ui.newChat.addEventListener("click", newChat);
for (const button of document.querySelectorAll(".suggestion")) {
  button.addEventListener("click", () => ask(button.dataset.question));
}

initTransport();
showStatus("idle");
ui.question.focus();
