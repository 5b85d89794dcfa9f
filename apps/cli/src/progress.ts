// The one updating line long commands draw on stderr when it is a terminal (copy,
// sync, store gc): redrawn in place, at most ten times a second unless told to,
// erased at the end. Never used when stderr is not a terminal.

/** Draws `text` over the line; `force` draws it even within 100 ms of the last one. */
export interface StatusLine {
  draw(text: string, force?: boolean): void;
  /** Erases the line, if one was drawn. */
  end(): void;
}

/** A status line on stderr when it is a terminal, else undefined (nothing is drawn). */
export function terminalStatusLine(): StatusLine | undefined {
  return process.stderr.isTTY ? statusLine((text) => process.stderr.write(text)) : undefined;
}

export function statusLine(write: (text: string) => void): StatusLine {
  let last = 0;
  let drawn = false;
  return {
    draw(text, force = false) {
      const now = Date.now();
      if (!force && now - last < 100) return;
      last = now;
      drawn = true;
      write(`\r\u001b[K${text}`);
    },
    end() {
      if (drawn) write('\r\u001b[K');
      drawn = false;
      last = 0;
    },
  };
}
