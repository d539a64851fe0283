import type { RunOptions } from "../core/runner.js";

/**
 * The deadline, the gateway's stop and the caller's signal (its client gone), watched while one
 * invocation runs in a process (spawned, forked or warm): whichever comes first calls `kill` and
 * is remembered; `end` stops watching and says how long the run took and what, if anything, cut
 * it short.
 */
export class RunWatch {
  private readonly started = performance.now();
  private readonly timer: NodeJS.Timeout;
  private readonly onStop: () => void;
  private timedOut = false;
  private interrupted = false;
  private clientClosed = false;

  constructor(
    timeoutMs: number,
    private readonly stop: AbortSignal,
    private readonly kill: () => void,
    private readonly caller: RunOptions["signal"] = undefined,
  ) {
    this.timer = setTimeout(() => {
      this.timedOut = true;
      kill();
    }, timeoutMs);
    this.onStop = () => {
      this.interrupted = true;
      kill();
    };
    stop.addEventListener("abort", this.onStop, { once: true });
    caller?.addEventListener("abort", this.clientGone, { once: true });
    if (stop.aborted) this.onStop();
    else if (caller?.aborted) this.clientGone();
  }

  /** The answer's reader is gone (its client went away): the run ends `client_closed`. */
  readonly clientGone = (): void => {
    this.clientClosed = true;
    this.kill();
  };

  /** Whether the deadline, the stop or the caller has ended the run. */
  get cut(): boolean {
    return this.timedOut || this.interrupted || this.clientClosed;
  }

  end(): { durationMs: number; timedOut: boolean; interrupted: boolean; clientClosed: boolean } {
    clearTimeout(this.timer);
    this.stop.removeEventListener("abort", this.onStop);
    this.caller?.removeEventListener("abort", this.clientGone);
    return {
      durationMs: performance.now() - this.started,
      timedOut: this.timedOut,
      interrupted: this.interrupted,
      clientClosed: this.clientClosed,
    };
  }
}
