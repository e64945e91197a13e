// A small reader for text/event-stream, for fetch() + ReadableStream where the browser's own
// EventSource parser cannot be used (EventSource can only GET, so it cannot carry a
// conversation). It follows the WHATWG HTML algorithm "Interpreting an event stream":
// https://html.spec.whatwg.org/multipage/server-sent-events.html#event-stream-interpretation
//
// Network chunks end anywhere: inside a UTF-8 character, inside a line, between the CR and
// the LF of a CRLF. So: bytes go through one TextDecoder in stream mode (it holds back an
// incomplete character until the next chunk, and drops one leading BOM as the spec asks),
// the unfinished last line is kept, and a CR ending one chunk swallows an LF starting the
// next.

const LINE_END = /\r\n|\r|\n/g;

export class SSEReader {
  constructor() {
    this.decoder = new TextDecoder("utf-8");
    this.partial = ""; // the current line, not yet terminated
    this.pendingCR = false; // the last chunk ended in CR: a leading LF is its other half
    this.data = []; // data lines of the event being read
    this.eventType = "";
    this.idBuffer = "";
    this.lastEventId = "";
    this.retry = null; // last valid reconnection time in ms
  }

  /** Feed one network chunk (Uint8Array); returns the events it completed. */
  feed(bytes) {
    return this.feedText(this.decoder.decode(bytes, { stream: true }));
  }

  /** End of stream. Per spec an event not terminated by a blank line is discarded. */
  end() {
    this.decoder.decode(); // flush (and reset) the decoder
    this.partial = "";
    this.pendingCR = false;
    this.data = [];
    this.eventType = "";
    return [];
  }

  feedText(text) {
    const events = [];
    if (text === "") return events; // keep pendingCR: the LF may still come
    let pos = 0;
    if (this.pendingCR) {
      this.pendingCR = false;
      if (text[0] === "\n") pos = 1;
    }
    LINE_END.lastIndex = pos;
    let match;
    while ((match = LINE_END.exec(text)) !== null) {
      const line = this.partial + text.slice(pos, match.index);
      this.partial = "";
      pos = match.index + match[0].length;
      if (match[0] === "\r" && pos === text.length) this.pendingCR = true;
      this.processLine(line, events);
    }
    this.partial += text.slice(pos);
    return events;
  }

  processLine(line, events) {
    if (line === "") {
      this.dispatch(events);
      return;
    }
    if (line[0] === ":") return; // a comment, e.g. the server's ": heartbeat"
    const colon = line.indexOf(":");
    let field = line;
    let value = "";
    if (colon >= 0) {
      field = line.slice(0, colon);
      value = line.slice(colon + 1);
      if (value[0] === " ") value = value.slice(1); // exactly one space is syntax
    }
    switch (field) {
      case "event":
        this.eventType = value;
        break;
      case "data":
        this.data.push(value);
        break;
      case "id":
        if (!value.includes("\0")) this.idBuffer = value;
        break;
      case "retry":
        if (/^[0-9]+$/.test(value)) this.retry = parseInt(value, 10);
        break;
      default:
        break; // unknown fields are ignored, as the spec requires
    }
  }

  dispatch(events) {
    this.lastEventId = this.idBuffer;
    if (this.data.length > 0) {
      events.push({
        type: this.eventType || "message",
        data: this.data.join("\n"),
        lastEventId: this.lastEventId,
      });
    }
    this.data = [];
    this.eventType = "";
  }
}
