/**
 * The fixed species code list. SNOMED CT concept ids are given only where a published source
 * states them; the others are left null rather than guessed.
 *  - dog 448771007, cat 448169003: shared/reference/README.md ("Codes").
 *  - horse 388445009: HL7 FHIR example value set http://hl7.org/fhir/ValueSet/animal-species.
 */
export const SPECIES = {
  dog: { display: 'Domestic dog', snomed: '448771007' },
  cat: { display: 'Domestic cat', snomed: '448169003' },
  rabbit: { display: 'Rabbit', snomed: null },
  horse: { display: 'Horse', snomed: '388445009' },
  ferret: { display: 'Ferret', snomed: null },
  bird: { display: 'Bird', snomed: null },
  other: { display: 'Other species', snomed: null },
} as const satisfies Record<string, { display: string; snomed: string | null }>;

export type SpeciesCode = keyof typeof SPECIES;
export const SPECIES_CODES = Object.keys(SPECIES) as SpeciesCode[];
