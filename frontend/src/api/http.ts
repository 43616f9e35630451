import { ApiError, type EventHandler, type Transport } from './transport';

interface EventMessage {
  seq: number;
  name: string;
  data: unknown;
}

/** HttpTransport calls POST /api/call/{Service}/{Method} and listens to /api/events (SSE). */
export class HttpTransport implements Transport {
  readonly kind = 'http' as const;
  private handlers = new Map<string, Set<EventHandler>>();
  private source: EventSource | null = null;
  private lastSeq = 0;

  constructor(private readonly base = '') {}

  async call<T>(service: string, method: string, args: unknown[]): Promise<T> {
    let res: Response;
    try {
      res = await fetch(`${this.base}/api/call/${service}/${method}`, {
        method: 'POST',
        credentials: 'same-origin',
        headers: { 'Content-Type': 'application/json', 'X-Keyholder-Client': '1' },
        body: JSON.stringify(args),
      });
    } catch {
      throw new ApiError('unavailable', 'The console is not reachable. Is keyholder serve still running?');
    }
    let body: { result?: T; error?: { code: string; message: string; field?: string } };
    try {
      body = await res.json();
    } catch {
      throw new ApiError('internal', `The console answered ${res.status} without a readable body.`);
    }
    if (!res.ok || body.error) {
      throw ApiError.from(body.error ?? { code: 'internal', message: `HTTP ${res.status}` });
    }
    return body.result as T;
  }

  on(event: string, handler: EventHandler): () => void {
    let set = this.handlers.get(event);
    if (!set) this.handlers.set(event, (set = new Set()));
    set.add(handler);
    this.ensureStream();
    return () => {
      set!.delete(handler);
    };
  }

  /** reconnect reopens the event stream (after a login the old one was refused). */
  reconnect() {
    this.source?.close();
    this.source = null;
    this.lastSeq = 0;
    if (this.handlers.size > 0) this.ensureStream();
  }

  private ensureStream() {
    if (this.source || typeof EventSource === 'undefined') return;
    this.source = new EventSource(`${this.base}/api/events`);
    this.source.onmessage = (ev) => {
      let msg: EventMessage;
      try {
        msg = JSON.parse(ev.data);
      } catch {
        return;
      }
      // A gap means the server dropped events for us: ask every view to reload.
      const gap = this.lastSeq !== 0 && msg.seq !== this.lastSeq + 1;
      this.lastSeq = msg.seq;
      if (gap) this.dispatch('resync', null);
      this.dispatch(msg.name, msg.data);
    };
    this.source.onerror = () => {
      // EventSource reconnects by itself; views reload when it comes back.
      this.lastSeq = 0;
    };
    this.source.onopen = () => this.dispatch('resync', null);
  }

  private dispatch(name: string, data: unknown) {
    this.handlers.get(name)?.forEach((h) => h(data));
  }
}
