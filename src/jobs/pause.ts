/**
 * A polling loop's wait: `sleep(ms)` resolves after `ms`, or at once when `wake()` is called
 * (work arrived here); a wake with no sleep pending does nothing.
 */
export class Pause {
  private wakeUp: (() => void) | null = null;

  sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      function done() {
        clearTimeout(timer);
        resolve();
      }
      this.wakeUp = () => {
        this.wakeUp = null;
        done();
      };
    });
  }

  wake(): void {
    this.wakeUp?.();
  }
}
