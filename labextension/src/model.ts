/** Polls the server while the sidebar is visible, backing off while requests fail. */
import { nextDelay } from './format';

export class Poller {
  constructor(private tick: () => Promise<void>, public intervalSeconds = 3, private maxSeconds = 60) {}

  private timer: ReturnType<typeof setTimeout> | null = null;
  private delay = 0;
  private visible = false;

  setVisible(visible: boolean): void {
    this.visible = visible;
    if (visible) {
      this.delay = this.intervalSeconds;
      void this.run();
    } else if (this.timer !== null) {
      clearTimeout(this.timer);
      this.timer = null;
    }
  }

  async run(): Promise<void> {
    if (this.timer !== null) {
      clearTimeout(this.timer);
      this.timer = null;
    }
    let ok = true;
    try {
      await this.tick();
    } catch {
      ok = false;
    }
    this.delay = nextDelay(this.delay, ok, this.intervalSeconds, this.maxSeconds);
    if (this.visible && !document.hidden) {
      this.timer = setTimeout(() => void this.run(), this.delay * 1000);
    }
  }

  dispose(): void {
    this.setVisible(false);
  }
}
