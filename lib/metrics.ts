// Prometheus metrics (served as text at GET /metrics).
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client'

export function createMetrics () {
  const registry = new Registry()
  collectDefaultMetrics({ register: registry, prefix: 'mqchat_process_' })
  return {
    registry,
    connections: new Gauge({ name: 'mqchat_connections', help: 'MQTT connections currently open', registers: [registry] }),
    accepted: new Counter({ name: 'mqchat_messages_accepted_total', help: 'chat messages stored in history (duplicates excluded)', registers: [registry] }),
    delivered: new Counter({ name: 'mqchat_inbox_events_published_total', help: 'inbox events published to devices', labelNames: ['type'] as const, registers: [registry] }),
    refused: new Counter({ name: 'mqchat_publishes_refused_total', help: 'device publishes refused, by reason code', labelNames: ['reason'] as const, registers: [registry] }),
    pushSent: new Counter({ name: 'mqchat_push_sent_total', help: 'pushes a provider accepted, by provider', labelNames: ['provider'] as const, registers: [registry] }),
    pushFailed: new Counter({ name: 'mqchat_push_failed_total', help: 'push requests a provider refused or that failed, by provider and reason (retried ones counted each time)', labelNames: ['provider', 'reason'] as const, registers: [registry] }),
    pushDropped: new Counter({ name: 'mqchat_push_dropped_total', help: 'pushes not sent, by reason: queue_full, gave_up (retries ran out), muted, connected (the device came back first)', labelNames: ['reason'] as const, registers: [registry] }),
    storeLatency: new Histogram({
      name: 'mqchat_store_seconds',
      help: 'time spent in store operations on the message path',
      labelNames: ['op'] as const,
      buckets: [0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1],
      registers: [registry]
    })
  }
}

export type Metrics = ReturnType<typeof createMetrics>
