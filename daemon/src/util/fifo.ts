// A first-in first-out queue whose shift is O(1): Array.prototype.shift moves every element, so a
// queue of 100,000 waiters (an upload of a 100,000-file project waits on a few slots) cost seconds.
export class Fifo<T> {
  private items: Array<T | undefined> = [];
  private head = 0;

  get length(): number {
    return this.items.length - this.head;
  }

  push(item: T): void {
    this.items.push(item);
  }

  shift(): T | undefined {
    if (this.head >= this.items.length) return undefined;
    const item = this.items[this.head];
    this.items[this.head] = undefined;
    this.head += 1;
    // Drop the consumed front once it is most of the array (amortised O(1)).
    if (this.head >= 1024 && this.head * 2 >= this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
    return item;
  }

  /** Removes one item (O(n): for the rare abort of a single waiter). */
  remove(item: T): void {
    const index = this.items.indexOf(item, this.head);
    if (index >= 0) this.items.splice(index, 1);
  }

  /** Takes every item out, in order. */
  drain(): T[] {
    const items = this.items.slice(this.head) as T[];
    this.items = [];
    this.head = 0;
    return items;
  }
}
