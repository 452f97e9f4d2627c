/**
 * Building blocks of the seed (bench/seed.ts): a seeded PRNG for every choice that shapes the
 * data (so two runs with the same --seed make the same volume and mix), unguessable time-ordered
 * ids (UUIDv7 at a given instant, random bits from the OS), synthetic names, and a min-heap of
 * future events (reads that happen minutes after a diagnosis).
 */
import { randomFillSync } from 'node:crypto';

/** sfc32: small, fast, good enough for shaping synthetic data (not for secrets). */
export function prng(seed: number): () => number {
  let a = 0x9e3779b9 ^ seed;
  let b = 0x243f6a88 ^ (seed * 31);
  let c = 0xb7e15162;
  let d = 1;
  const next = (): number => {
    a >>>= 0;
    b >>>= 0;
    c >>>= 0;
    d >>>= 0;
    const t = (((a + b) | 0) + d) | 0;
    d = (d + 1) | 0;
    a = b ^ (b >>> 9);
    b = (c + (c << 3)) | 0;
    c = (c << 21) | (c >>> 11);
    c = (c + t) | 0;
    return (t >>> 0) / 4294967296;
  };
  for (let i = 0; i < 20; i++) next();
  return next;
}

export type Rng = () => number;

export const pick = <T>(rng: Rng, items: readonly T[]): T => items[Math.floor(rng() * items.length)]!;

/** Standard normal (Box-Muller). */
export function gaussian(rng: Rng): number {
  const u = Math.max(rng(), 1e-12);
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * rng());
}

/** Exponential with the given mean. */
export const exponential = (rng: Rng, mean: number): number => -Math.log(Math.max(rng(), 1e-12)) * mean;

const HEX = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, '0'));
const pool = Buffer.allocUnsafe(64 * 1024);
let poolPos = pool.length;

function randomBytesFromPool(n: number): number {
  if (poolPos + n > pool.length) {
    randomFillSync(pool);
    poolPos = 0;
  }
  const at = poolPos;
  poolPos += n;
  return at;
}

/** A UUIDv7 for the instant `ms` (RFC 9562: 48-bit Unix ms, version 7, variant 10, 74 random bits). */
export function uuidv7At(ms: number): string {
  const ts = Math.floor(ms);
  const p = randomBytesFromPool(10);
  const r = pool;
  const high = Math.floor(ts / 0x10000).toString(16).padStart(8, '0');
  const low = (ts % 0x10000).toString(16).padStart(4, '0');
  return (
    `${high}-${low}-${HEX[0x70 | (r[p]! & 0x0f)]}${HEX[r[p + 1]!]}-${HEX[0x80 | (r[p + 2]! & 0x3f)]}${HEX[r[p + 3]!]}-` +
    `${HEX[r[p + 4]!]}${HEX[r[p + 5]!]}${HEX[r[p + 6]!]}${HEX[r[p + 7]!]}${HEX[r[p + 8]!]}${HEX[r[p + 9]!]}`
  );
}

/** A consultation session id as the service makes them (newSessionId: cs_ + 16 random bytes). */
export function sessionId(): string {
  const p = randomBytesFromPool(16);
  return `cs_${pool.subarray(p, p + 16).toString('base64url')}`;
}

// --- synthetic names (no real person; e-mail on example.com, phones in Ofcom's drama range) ---

const FIRST = ['Olivia', 'Amelia', 'Isla', 'Ava', 'Mia', 'Grace', 'Lily', 'Freya', 'Emily', 'Sophie', 'Ella', 'Poppy', 'Chloe', 'Ruby', 'Hannah', 'Lucy', 'Sarah', 'Emma', 'Laura', 'Anna', 'Oliver', 'George', 'Harry', 'Noah', 'Jack', 'Leo', 'Arthur', 'Oscar', 'Charlie', 'Jacob', 'Thomas', 'James', 'William', 'Daniel', 'David', 'Samuel', 'Joseph', 'Adam', 'Ryan', 'Matthew', 'Priya', 'Aisha', 'Fatima', 'Mohammed', 'Ali', 'Wei', 'Mei', 'Carlos', 'Sofia', 'Lucas', 'Marta', 'Pierre', 'Ines', 'Niamh', 'Sean', 'Aoife', 'Ciaran', 'Rhys', 'Cerys', 'Ewan'];
const LAST = ['Smith', 'Jones', 'Taylor', 'Brown', 'Williams', 'Wilson', 'Johnson', 'Davies', 'Robinson', 'Wright', 'Thompson', 'Evans', 'Walker', 'White', 'Roberts', 'Green', 'Hall', 'Wood', 'Jackson', 'Clarke', 'Patel', 'Khan', 'Singh', 'Ahmed', 'Murphy', "O'Brien", 'Kelly', 'Campbell', 'Stewart', 'Morris', 'Hughes', 'Edwards', 'Turner', 'Hill', 'Cooper', 'Ward', 'Morgan', 'King', 'Baker', 'Harris', 'Garcia', 'Martin', 'Rossi', 'Novak', 'Chen', 'Nguyen', 'Kowalski', 'Fischer', 'Dubois', 'Silva'];
const STREETS = ['High Street', 'Station Road', 'Church Lane', 'Victoria Road', 'Green Lane', 'Manor Road', 'Park Avenue', 'Mill Lane', 'The Crescent', 'Queens Road', 'New Road', 'Kings Road', 'School Lane', 'Orchard Way', 'Meadow Close'];
export const TOWNS = ['Ashford', 'Bramley', 'Carlton', 'Dunmore', 'Eastwood', 'Fairfield', 'Glenbrook', 'Hartley', 'Inverbay', 'Kingsmead', 'Langley', 'Millbrook', 'Northgate', 'Oakhurst', 'Pembury', 'Queensbury', 'Riverside', 'Southfield', 'Thornbury', 'Upton', 'Westbrook', 'Yarmouth', 'Ashbourne', 'Belmont', 'Clearwater', 'Deepdale', 'Elmstead', 'Foxley', 'Greystone', 'Hollybush'];
const CLINIC_KINDS = ['Veterinary Clinic', 'Vets', 'Animal Hospital', 'Veterinary Surgery', 'Pet Care Centre', 'Veterinary Practice', 'Small Animal Clinic', 'Veterinary Group'];
const DOG_NAMES = ['Bella', 'Max', 'Luna', 'Charlie', 'Daisy', 'Buddy', 'Rosie', 'Teddy', 'Milo', 'Bailey', 'Coco', 'Alfie', 'Ruby', 'Bruno', 'Poppy', 'Archie', 'Molly', 'Rocky', 'Lola', 'Duke', 'Nala', 'Ziggy', 'Biscuit', 'Murphy', 'Hugo', 'Otis', 'Willow', 'Rex', 'Maggie', 'Winston', 'Scout', 'Bear', 'Pepper', 'Ollie', 'Frankie', 'Honey', 'Toby', 'Jasper', 'Skye', 'Barney'];
const CAT_NAMES = ['Luna', 'Oliver', 'Leo', 'Milo', 'Bella', 'Simba', 'Nala', 'Tigger', 'Smokey', 'Cleo', 'Misty', 'Shadow', 'Felix', 'Oscar', 'Kitty', 'Ginger', 'Jasper', 'Willow', 'Pumpkin', 'Mittens', 'Salem', 'Pixel', 'Mochi', 'Sooty', 'Poppy', 'Tabitha', 'Whiskers', 'Binx', 'Figaro', 'Marmalade', 'Socks', 'Pebbles', 'Olive', 'Jinx', 'Maple', 'Boots', 'Toffee', 'Biscuit', 'Cosmo', 'Hazel'];

export function clinicName(rng: Rng, index: number): string {
  return `${pick(rng, TOWNS)} ${pick(rng, CLINIC_KINDS)} #${index + 1}`;
}

export interface OwnerContent {
  name: string;
  email?: string;
  phone?: string;
  address?: string;
}

/** Owner content as compact(OwnerInput) stores it: absent optional fields are left out. */
export function ownerContent(rng: Rng, n: number): OwnerContent {
  const first = pick(rng, FIRST);
  const last = pick(rng, LAST);
  const content: OwnerContent = { name: `${first} ${last}` };
  if (rng() < 0.9) content.email = `${first}.${last}${n % 1000}`.toLowerCase().replace(/[^a-z0-9.]/g, '') + '@example.com';
  if (rng() < 0.85) content.phone = `+44 7700 900${String(Math.floor(rng() * 1000)).padStart(3, '0')}`;
  if (rng() < 0.6) content.address = `${1 + Math.floor(rng() * 180)} ${pick(rng, STREETS)}, ${pick(rng, TOWNS)}`;
  return content;
}

export function petName(rng: Rng, species: 'dog' | 'cat'): string {
  return pick(rng, species === 'dog' ? DOG_NAMES : CAT_NAMES);
}

// --- a min-heap of future events, ordered by time --------------------------------------------

export class EventHeap<T extends { t: number }> {
  private readonly items: T[] = [];

  get size(): number {
    return this.items.length;
  }

  push(item: T): void {
    const a = this.items;
    a.push(item);
    let i = a.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (a[parent]!.t <= a[i]!.t) break;
      [a[parent], a[i]] = [a[i]!, a[parent]!];
      i = parent;
    }
  }

  /** Removes and returns the earliest item if it is at or before `t`. */
  popUntil(t: number): T | undefined {
    const a = this.items;
    if (a.length === 0 || a[0]!.t > t) return undefined;
    const top = a[0]!;
    const last = a.pop()!;
    if (a.length > 0) {
      a[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < a.length && a[l]!.t < a[m]!.t) m = l;
        if (r < a.length && a[r]!.t < a[m]!.t) m = r;
        if (m === i) break;
        [a[m], a[i]] = [a[i]!, a[m]!];
        i = m;
      }
    }
    return top;
  }
}
