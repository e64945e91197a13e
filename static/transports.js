// Two ways to receive one streamed answer from /ai/streamChat, behind one small interface.
// Each function starts a request and reports what happens through `emit(event)`:
//
//   {type: "open"}                       the response started (HTTP 200, event stream)
//   {type: "start", stream}              the server named the stream (for Stop)
//   {type: "update", content}            one piece of the answer
//   {type: "error", msg, code}           the server's `error` event (its `end` follows)
//   {type: "end", reason, usage}         the answer is complete; nothing follows
//   {type: "dropped"}                    the connection broke before `end`
//   {type: "refused", status, message}   no stream: refused, or the server was unreachable
//
// and returns {stop()}, which ends the request from the page (no further events).

import { SSEReader } from "./sse-reader.js";

const ENDPOINT = "/ai/streamChat";

function parseJSON(text) {
  try {
    return JSON.parse(text);
  } catch {
    return null;
  }
}

// Maps one server event (type + data text) to an emitted event; false for unknown types.
function relayEvent(type, dataText, emit) {
  const data = parseJSON(dataText) || {};
  switch (type) {
    case "start":
      emit({ type: "start", stream: typeof data.stream === "string" ? data.stream : null });
      return true;
    case "update":
      if (typeof data.content === "string") emit({ type: "update", content: data.content });
      return true;
    case "error":
      emit({
        type: "error",
        msg: typeof data.msg === "string" && data.msg ? data.msg : "The server reported an error.",
        code: typeof data.code === "string" ? data.code : null,
      });
      return true;
    case "end":
      emit({
        type: "end",
        reason: typeof data.reason === "string" ? data.reason : "stop",
        usage: data.usage && typeof data.usage === "object" ? data.usage : null,
      });
      return true;
    default:
      return false;
  }
}

// Ask the server to stop generating now. Closing the connection also stops it, but a server
// that keeps streams resumable after a disconnect would keep the model running for a while.
// A server without this endpoint answers 404/405, which is fine: the close does the work.
function stopOnServer(streamId) {
  if (!streamId) return;
  fetch(`/ai/stop/${encodeURIComponent(streamId)}`, {
    method: "POST",
    credentials: "same-origin",
    keepalive: true,
  }).catch(() => {});
}

/** The seed's way: EventSource on GET ?question=... (one question, no history). */
export function viaEventSource(question, emit) {
  const source = new EventSource(`${ENDPOINT}?question=${encodeURIComponent(question)}`);
  let streamId = null;
  let opened = false;
  let finished = false;
  const finish = () => {
    finished = true;
    // After `end` (or any failure) close at once: a closed EventSource never reconnects,
    // and a reconnect here would ask the model the same question again.
    source.close();
  };
  const listen = (type) =>
    source.addEventListener(type, (event) => {
      if (finished) return;
      if (type === "end") finish();
      relayEvent(type, event.data, (ev) => {
        if (ev.type === "start") streamId = ev.stream;
        emit(ev);
      });
    });
  source.addEventListener("open", () => {
    opened = true;
    if (!finished) emit({ type: "open" });
  });
  ["start", "update", "end"].forEach(listen);
  // `error` means two things to an EventSource: the server's `event: error` (a MessageEvent
  // with data) or a network failure (a plain Event). Tell them apart.
  source.addEventListener("error", (event) => {
    if (finished) return;
    if (event instanceof MessageEvent) {
      relayEvent("error", event.data, emit);
      return;
    }
    finish();
    emit(
      opened
        ? { type: "dropped" }
        : {
            type: "refused",
            status: null,
            message: "The server refused the request or could not be reached.",
          },
    );
  });
  return {
    stop() {
      if (finished) return;
      finish();
      stopOnServer(streamId);
    },
  };
}

/** fetch + ReadableStream on POST, carrying the whole conversation as `messages`. */
export function viaFetch(messages, emit) {
  const controller = new AbortController();
  let streamId = null;
  let finished = false;

  async function refused(response) {
    let message = `The server answered HTTP ${response.status}.`;
    const body = parseJSON(await response.text().catch(() => ""));
    if (body && body.error && typeof body.error.message === "string") message = body.error.message;
    return { type: "refused", status: response.status, message };
  }

  async function run() {
    let response;
    try {
      response = await fetch(ENDPOINT, {
        method: "POST",
        headers: { "Content-Type": "application/json", Accept: "text/event-stream" },
        body: JSON.stringify({ messages }),
        credentials: "same-origin",
        cache: "no-store",
        signal: controller.signal,
      });
    } catch {
      if (!finished) {
        finished = true;
        emit({ type: "refused", status: null, message: "Could not reach the server." });
      }
      return;
    }
    const type = response.headers.get("Content-Type") || "";
    if (!response.ok || !type.startsWith("text/event-stream")) {
      const event = await refused(response);
      if (!finished) {
        finished = true;
        emit(event);
      }
      return;
    }
    streamId = response.headers.get("X-Stream-Id");
    emit({ type: "open" });
    const reader = response.body.getReader();
    const sse = new SSEReader();
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        for (const event of sse.feed(value)) {
          if (finished) break;
          if (event.type === "end") finished = true;
          relayEvent(event.type, event.data, (ev) => {
            if (ev.type === "start") streamId = ev.stream || streamId;
            emit(ev);
          });
        }
        // After `end`, keep reading to the close the server sends next, so the
        // connection ends cleanly instead of being reset.
      }
      sse.end();
    } catch {
      // A network error mid-body (or our own abort, when `finished` is already set).
    }
    if (!finished) {
      finished = true;
      emit({ type: "dropped" });
    }
  }

  run();
  return {
    stop() {
      if (finished) return;
      finished = true;
      stopOnServer(streamId);
      controller.abort();
    },
  };
}
