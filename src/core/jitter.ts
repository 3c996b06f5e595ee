/**
 * A schedule's jitter (CONTRACT §11): each fire starts up to `jitterMs` after its slot, so a thousand `0 * * * *`
 * agents do not call one model provider in the same second. The delay is a pure function of (job, slot): every
 * instance plans the same one, and a fire planned again (a restart, another instance taking over) keeps it. The
 * hash (FNV-1a over the job id and the slot, then a 32-bit finaliser) spreads delays evenly over [0, jitterMs].
 */
export function jitterOf(jobId: string, slot: number, jitterMs: number | undefined): number {
  if (!jitterMs || jitterMs <= 0) return 0;
  let h = 0x811c9dc5;
  const key = `${jobId}@${slot}`;
  for (let i = 0; i < key.length; i++) {
    h ^= key.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  // murmur3's finaliser: FNV alone leaves the low bits of near-equal keys (consecutive slots) correlated.
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return Math.floor(((h >>> 0) / 0x1_0000_0000) * (jitterMs + 1));
}
