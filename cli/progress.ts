// A progress display for waits on builds and deploys, on stderr so stdout stays parseable.
// On a terminal: a spinner and the current phase with its elapsed time, redrawn in place, and
// one ✓ line per finished phase. Elsewhere (CI logs, pipes): one plain line per phase change.

import { duration } from "./table.ts";

const FRAMES = ["⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"];

export class Progress {
  private current: { text: string; started: number } | null = null;
  private timer: NodeJS.Timeout | null = null;
  private frame = 0;

  constructor(
    private readonly stream: NodeJS.WriteStream = process.stderr,
    private readonly tty = Boolean(stream.isTTY) && process.env.TERM !== "dumb",
  ) {}

  /** Moves to a new phase; the same text again is not a change. */
  phase(text: string): void {
    if (this.current?.text === text) return;
    this.finishLine("✓");
    this.current = { text, started: performance.now() };
    if (!this.tty) {
      this.stream.write(`${text}\n`);
      return;
    }
    this.draw();
    this.timer ??= setInterval(() => this.draw(), 100);
  }

  /** Ends the display; `mark` is how the last phase ended on a terminal (✓ or ✗). */
  stop(mark: "✓" | "✗" = "✓"): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    this.finishLine(mark);
    this.current = null;
  }

  private draw(): void {
    if (!this.current) return;
    const f = FRAMES[this.frame++ % FRAMES.length];
    this.stream.write(
      `\r\x1b[2K${f} ${this.current.text} ${duration(performance.now() - this.current.started)}`,
    );
  }

  private finishLine(mark: string): void {
    if (!this.current || !this.tty) return;
    this.stream.write(
      `\r\x1b[2K${mark} ${this.current.text} ${duration(performance.now() - this.current.started)}\n`,
    );
  }
}
