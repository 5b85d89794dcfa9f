/**
 * Single flight: callers asking for the same key while a task runs share its
 * promise instead of starting another. The key is forgotten once the task
 * settles, so a later call starts afresh (a failure is not remembered).
 */
export class SingleFlight<K, V> {
  readonly #running = new Map<K, Promise<V>>();

  /** The task's promise for `key`: the one in flight, else `task()` started now. */
  run(key: K, task: () => Promise<V>): Promise<V> {
    const running = this.#running.get(key);
    if (running) return running;
    const started = task();
    this.#running.set(key, started);
    const forget = () => {
      if (this.#running.get(key) === started) this.#running.delete(key);
    };
    started.then(forget, forget);
    return started;
  }

  /** The promise in flight for `key`, if any. */
  get(key: K): Promise<V> | undefined {
    return this.#running.get(key);
  }

  has(key: K): boolean {
    return this.#running.has(key);
  }

  /** Every promise in flight (for waiting on them at close). */
  values(): Promise<V>[] {
    return [...this.#running.values()];
  }

  get size(): number {
    return this.#running.size;
  }
}
