/**
 * The compact form of the evidence links stored beside a report (diagnosis_provenance.evidence):
 * each link a positional array [conclusionType, conclusionCode, evidenceKind, evidenceRef,
 * finding, weight, detail], in order. One value instead of a row per link.
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
