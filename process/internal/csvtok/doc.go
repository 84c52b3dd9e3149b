// Package csvtok splits robot CSV exports into lines and fields, fast and
// without ever failing on content. It owns the first step of cleaning: turning
// bytes into one [Record] per physical line, each with its 1-based line number,
// its raw text and its fields, or a [Problem] saying why it has no fields.
//
// Why not an existing reader: Arrow's csv reader wraps encoding/csv and stops
// at the first malformed row, so one bad line would lose the rest of a file.
// encoding/csv itself lets a quoted field span lines, so one stray quote
// swallows every following line into one field and breaks the accounting of
// rows in against rows out; it is also 2.5-3x slower on a robot export and
// allocates a string per record (BenchmarkReader, BenchmarkEncodingCSV).
// Robots never put newlines inside fields, so here a record is exactly one
// physical line, and a quote left open ends with its line.
//
// What a caller can rely on:
//   - every physical line comes out exactly once, in order, with line numbers
//     1, 2, 3, …; a file with no bytes (or only a UTF-8 BOM) has no records,
//     and a final line without a line terminator has NoNewline set;
//   - an empty line comes out with one empty field, so it can be counted and
//     quarantined like any other row;
//   - a UTF-8 BOM is dropped from line 1 only; one CR before the LF (or before
//     EOF) is dropped; a CR anywhere else is kept as content;
//   - a line longer than [Options.MaxLineBytes] is never buffered whole: its
//     Raw keeps the first [Options.MaxRawBytes] and the rest is skipped.
//     Memory is bounded whatever the input: the read buffer grows from
//     [Options.BufferSize] to at most MaxLineBytes, the buffer for unescaped
//     quoted fields to at most MaxLineBytes, and the field slice takes 24
//     bytes a field (a line made of delimiters costs more than its own size
//     while it is the current record);
//   - fields are subslices of the read buffer, except quoted fields with
//     doubled quotes, which are unescaped into a reused buffer; a steady
//     stream of records allocates nothing.
//
// Errors: content problems are never errors; they are reported per record as
// [ProblemTooLong], [ProblemInvalidUTF8], [ProblemUnterminatedQuote] or
// [ProblemBadQuote], one per record in that order of precedence. [Reader.Err]
// returns only the I/O error that stopped [Reader.Next] (wrapped with the line
// and byte offset it was reading), or an error for invalid [Options].
package csvtok
