import { v7 as uuidv7 } from "uuid";
import type { FunctionCatalog } from "../cluster/functions.js";
import { log } from "../core/log.js";
import { dueTicks, type Schedule, scheduleBody, scheduleKey } from "../core/schedules.js";
import type { CurrentFunction, NewJob, QueueBounds, Store } from "../store/contract.js";

export interface SchedulerOptions {
  node: string;
  bounds: QueueBounds;
  now?: () => number;
  newId?: () => string;
  /** Told when a tick enqueued a job. */
  enqueued?: () => void;
}

/** The header a scheduled run carries: the tick it runs for (ISO 8601, UTC). */
export const SCHEDULED_TIME_HEADER = "x-fngw-scheduled-time";

/**
 * Turns schedules into jobs. Every gateway runs one, and each looks at every enabled schedule of
 * every current version once a second; a tick becomes a job only through the store's claim (the
 * tick's key), so exactly one gateway enqueues it. What is due, late or missed is `core/schedules.ts`'s call.
 */
export class Scheduler {
  private readonly now: () => number;
  private readonly newId: () => string;
  /** The newest tick this gateway knows to be claimed, by function and schedule. */
  private readonly seen = new Map<string, number>();
  private timer: NodeJS.Timeout | null = null;
  private pass: Promise<void> | null = null;
  private stopped = false;

  constructor(
    private readonly store: Store,
    private readonly functions: FunctionCatalog,
    private readonly options: SchedulerOptions,
  ) {
    this.now = options.now ?? Date.now;
    this.newId = options.newId ?? uuidv7;
  }

  start(): void {
    const next = () => {
      if (this.stopped) return;
      // Just after each whole second, when second-level ticks fall.
      this.timer = setTimeout(
        () => {
          this.runOnce().finally(next);
        },
        1000 - (this.now() % 1000) + 5,
      );
      this.timer.unref();
    };
    next();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    await this.pass;
  }

  /** One look at every schedule, after the one in progress (the tests call it with their clock). */
  runOnce(): Promise<void> {
    const pass: Promise<void> = (this.pass ?? Promise.resolve()).then(() => this.look());
    this.pass = pass.finally(() => {
      if (this.pass === settled) this.pass = null;
    });
    const settled = this.pass;
    return pass;
  }

  private async look(): Promise<void> {
    const now = this.now();
    for (const { name } of this.functions.list()) {
      const fn = this.functions.get(name);
      if (!fn) continue;
      for (const schedule of fn.schedules) {
        if (!schedule.enabled) continue;
        try {
          await this.fire(fn, schedule, now);
        } catch (err) {
          log.warn({ err, function: fn.name }, `schedule '${schedule.cron}' of ${fn.name}: ${(err as Error).message}`);
        }
      }
    }
  }

  private async fire(fn: CurrentFunction, schedule: Schedule, now: number): Promise<void> {
    const key = scheduleKey(schedule);
    const seenKey = `${fn.name}\0${key}`;
    let since = this.seen.get(seenKey);
    if (since === undefined) {
      // A schedule starts with the version that brought it; after that, from the newest tick claimed.
      since = (await this.store.schedules.lastTick(fn.name, key)) ?? fn.createdAt;
      this.seen.set(seenKey, since);
    }
    const plan = dueTicks(schedule, since, now, fn.maxEventAgeS * 1000);
    if (plan.uncounted > 0)
      log.warn(`schedule '${schedule.cron}' of ${fn.name}: ${plan.uncounted} older tick(s) were missed while no gateway ran`);
    const tick = (tickAt: number) => ({ functionName: fn.name, scheduleKey: key, tickAt, node: this.options.node, claimedAt: now });
    for (const tickAt of plan.missed) {
      await this.store.schedules.claim(tick(tickAt), { outcome: "missed" });
      this.seen.set(seenKey, tickAt);
    }
    for (const tickAt of plan.run) {
      const outcome = await this.store.schedules.claim(tick(tickAt), {
        job: this.job(fn, schedule, key, tickAt, now),
        bounds: this.options.bounds,
        skipWhileRunning: schedule.overlap === "skip",
      });
      this.seen.set(seenKey, tickAt);
      if (outcome === "enqueued") this.options.enqueued?.();
      if (outcome === "refused")
        log.warn(`schedule '${schedule.cron}' of ${fn.name}: the tick at ${new Date(tickAt).toISOString()} found the queue full`);
    }
  }

  private job(fn: CurrentFunction, schedule: Schedule, key: string, tickAt: number, now: number): NewJob {
    const { body, contentType } = scheduleBody(schedule);
    const headers: [string, string][] = [
      [SCHEDULED_TIME_HEADER, new Date(tickAt).toISOString()],
      ["user-agent", "fngw-scheduler"],
    ];
    if (contentType) headers.push(["content-type", contentType]);
    const request = { method: "POST", path: "/", url: `http://localhost/fn/${fn.name}/`, headers, body };
    return {
      id: this.newId(),
      functionName: fn.name,
      version: null,
      trigger: "schedule",
      request,
      requestBytes: body.byteLength + 128,
      maxAttempts: fn.retries + 1,
      createdAt: now,
      expiresAt: tickAt + fn.maxEventAgeS * 1000,
      runAt: now,
      idempotencyKey: null,
      callbackUrl: null,
      scheduledAt: tickAt,
      scheduleKey: key,
    };
  }
}
