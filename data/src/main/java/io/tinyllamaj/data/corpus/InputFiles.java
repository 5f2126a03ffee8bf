package io.tinyllamaj.data.corpus;

import java.io.IOException;
import java.nio.file.FileSystems;
import java.nio.file.Files;
import java.nio.file.InvalidPathException;
import java.nio.file.Path;
import java.nio.file.PathMatcher;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import java.util.TreeSet;
import java.util.regex.PatternSyntaxException;
import java.util.stream.Stream;

/**
 * Expands input globs ({@code data/slimpajama/train/**}{@code /*.jsonl.zst}) into a sorted list
 * of files. Sorting by path makes the document order, and so the shards, independent of the
 * order the file system lists directories in.
 */
public final class InputFiles {
    private InputFiles() {
    }

    public static List<Path> expand(List<String> globs) throws IOException {
        return expand(globs, null);
    }

    /**
     * The files, each once: one reached twice (a link beside its target, two globs) is kept
     * under its first name in path order, so its documents are not prepared twice. Files under
     * {@code excluded} (the output folder, when it lies inside an input folder) are left out, or a
     * second run would read the first run's shards as input.
     */
    public static List<Path> expand(List<String> globs, Path excluded) throws IOException {
        TreeSet<Path> files = new TreeSet<>();
        Path skip = excluded == null ? null : excluded.toAbsolutePath().normalize();
        for (String glob : globs) {
            List<Path> matched = expand(glob).stream().filter(f -> skip == null || !f.toAbsolutePath().normalize().startsWith(skip))
                    .toList();
            if (matched.isEmpty()) {
                throw new IOException("no input files match " + glob);
            }
            files.addAll(matched);
        }
        List<Path> distinct = new ArrayList<>();
        Set<Path> seen = new HashSet<>();
        for (Path file : files) {
            if (seen.add(file.toRealPath())) {
                distinct.add(file);
            }
        }
        return distinct;
    }

    private static List<Path> expand(String glob) throws IOException {
        Path literal;
        try {
            literal = Path.of(glob);
        } catch (InvalidPathException e) {
            throw new IOException("--input '" + glob + "' is not a valid path (" + e.getReason() + ")");
        }
        // an existing path is itself, even where its name holds glob characters (a[1].txt)
        if (!hasWildcard(glob) || Files.exists(literal)) {
            if (Files.isDirectory(literal)) {
                try (Stream<Path> walk = Files.walk(literal)) {
                    return walk.filter(Files::isRegularFile).map(Path::normalize).sorted().toList();
                }
            }
            return Files.isRegularFile(literal) ? List.of(literal.normalize()) : List.of();
        }
        // the pattern is checked before the file system, so a bad one is named even where nothing exists
        PathMatcher matcher;
        try {
            matcher = FileSystems.getDefault().getPathMatcher("glob:" + literal.normalize());
        } catch (PatternSyntaxException e) {
            throw new IOException("--input '" + glob + "' is not a valid glob (" + e.getDescription().replace("'", "") + ")");
        }
        Path base = baseDirectory(glob);
        if (!Files.isDirectory(base)) {
            return List.of();
        }
        try (Stream<Path> walk = Files.walk(base)) {
            return walk.filter(Files::isRegularFile).map(Path::normalize).filter(matcher::matches).sorted().toList();
        }
    }

    private static boolean hasWildcard(String glob) {
        return glob.chars().anyMatch(c -> c == '*' || c == '?' || c == '[' || c == '{');
    }

    /** The longest leading path without wildcards: where the walk starts. */
    private static Path baseDirectory(String glob) {
        Path base = null;
        for (Path part : Path.of(glob)) {
            if (hasWildcard(part.toString())) {
                break;
            }
            base = base == null ? part : base.resolve(part);
        }
        if (Path.of(glob).isAbsolute()) {
            base = base == null ? Path.of(glob).getRoot() : Path.of(glob).getRoot().resolve(base);
        }
        return base == null ? Path.of(".") : base;
    }
}
