import type pg from 'pg';
import type { Clock } from '../../core/clock.ts';

/** close() waits this long for the server's goodbye, then destroys the socket (a dead network never answers). */
const END_TIMEOUT_MS = 1_000;
/** Ends `c` and resolves once its socket is gone; never rejects. */
export function endClient(clock: Clock, c: pg.Client): Promise<void> {
  return new Promise<void>((resolve) => {
    // pg's end() waits for the server to close its side; over a dead network it never does, and pg has no
    // public destroy, so after END_TIMEOUT_MS the socket is destroyed through the client's connection.
    const timer = clock.setTimer(() => {
      (c as unknown as { connection?: { stream?: { destroy?: () => void } } }).connection?.stream?.destroy?.();
      resolve();
    }, END_TIMEOUT_MS);
    c.end().then(
      () => {
        timer.cancel();
        resolve();
      },
      () => {
        timer.cancel();
        resolve();
      },
    );
  });
}
