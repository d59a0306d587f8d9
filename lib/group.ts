// Grouping by key (Map.groupBy needs the ES2024 library, which Node 20's types here lack).

/** The items grouped by `key`: groups in the order their first item came, each group's items in order. */
export function groupBy<K, T> (items: Iterable<T>, key: (item: T) => K): Map<K, T[]> {
  const groups = new Map<K, T[]>()
  for (const item of items) {
    const k = key(item)
    const list = groups.get(k)
    if (list) list.push(item)
    else groups.set(k, [item])
  }
  return groups
}
