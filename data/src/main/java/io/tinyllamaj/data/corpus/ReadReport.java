package io.tinyllamaj.data.corpus;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.EnumMap;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;

/**
 * What the readers could not use, and what they left out on purpose. Bad records are never
 * dropped silently: each is counted by kind and remembered with its file and line, so the run
 * ends with a summary; in strict mode the first one is an error instead. Readers run on one
 * thread, in input order, so the report is the same on every run.
 */
public final class ReadReport {

    /** One unusable record: where it was and why. */
    public record Problem(ProblemKind kind, String location, String detail) {
        public String line() {
            return location + ": " + kind.label() + (detail.isEmpty() ? "" : " (" + detail + ")");
        }
    }

    private final boolean strict;
    private final Map<ProblemKind, Long> counts = new EnumMap<>(ProblemKind.class);
    private final Map<String, Long> excluded = new TreeMap<>();
    private final List<Problem> problems = new ArrayList<>();

    public ReadReport(boolean strict) {
        this.strict = strict;
    }

    /** Records an unusable record at {@code file:line} (line 0: the whole file). */
    public void problem(ProblemKind kind, Path file, long line, String detail) {
        String location = line > 0 ? file + ":" + line : file.toString();
        Problem problem = new Problem(kind, location, detail == null ? "" : detail.replace('\n', ' '));
        if (strict) {
            throw new CorpusProblemException(problem.line());
        }
        counts.merge(kind, 1L, Long::sum);
        problems.add(problem);
    }

    /** Counts a record left out by design (a filtered subset, an empty document). */
    public void exclude(String reason) {
        excluded.merge(reason, 1L, Long::sum);
    }

    public long problemCount() {
        return counts.values().stream().mapToLong(Long::longValue).sum();
    }

    public Map<ProblemKind, Long> counts() {
        return Map.copyOf(counts);
    }

    public Map<String, Long> excluded() {
        return Map.copyOf(excluded);
    }

    public List<Problem> problems() {
        return List.copyOf(problems);
    }

    /** One line: "3 unusable records (1 malformed JSON, 2 invalid UTF-8); excluded: 2 RedPajamaGithub". */
    public String summary() {
        StringBuilder line = new StringBuilder();
        line.append(problemCount()).append(" unusable records");
        if (!counts.isEmpty()) {
            line.append(" (");
            counts.forEach((kind, n) -> line.append(n).append(' ').append(kind.label()).append(", "));
            line.setLength(line.length() - 2);
            line.append(')');
        }
        if (!excluded.isEmpty()) {
            line.append("; excluded:");
            excluded.forEach((reason, n) -> line.append(' ').append(n).append(' ').append(reason).append(','));
            line.setLength(line.length() - 1);
        }
        return line.toString();
    }
}
