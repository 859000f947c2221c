// Package dlp finds protected health information (PHI) in Chinese and English
// text, FHIR JSON, CSV and DICOM text values.
//
// Every detector validates what it matches (check digits, calendar dates,
// numbering-plan rules, SSA rules) and reports a Finding: a kind, a span in
// Unicode code points, a score and the detector's name. A finding never holds
// the matched value, so findings and reports are safe to log.
//
// Scanning is a single pass over the bytes of the text: digits, '@', '+', '(',
// ASCII words and CJK runes trigger small hand-written parsers; there are no
// regular expressions on the main path. See docs/dlp.md for the rules, their
// sources, the measured recall and precision, and what is not caught.
package dlp
