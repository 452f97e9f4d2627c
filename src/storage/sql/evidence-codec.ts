/**
 * The compact form of a diagnosis's evidence links: each link a positional array
 * [conclusionType, conclusionCode, evidenceKind, evidenceRef, finding, weight, detail], in order.
 * Half the bytes of the keyed form, and one value for the database to store instead of ~70 rows.
 */
import type { EvidenceLink } from '../../clinical/ports.js';

type Encoded = [EvidenceLink['conclusionType'], string, string, string, string | null, number | null, Record<string, unknown>];

export function encodeEvidence(links: readonly EvidenceLink[]): string {
  return JSON.stringify(links.map((e): Encoded => [e.conclusionType, e.conclusionCode, e.evidenceKind, e.evidenceRef, e.finding, e.weight, e.detail]));
}

export function decodeEvidence(value: unknown): EvidenceLink[] {
  const rows = (typeof value === 'string' ? JSON.parse(value) : value) as Encoded[];
  return rows.map(([conclusionType, conclusionCode, evidenceKind, evidenceRef, finding, weight, detail]) => ({ conclusionType, conclusionCode, evidenceKind, evidenceRef, finding, detail, weight }));
}
