package io.tinyllamaj.trainer.data;

import java.net.URISyntaxException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Optional;

/**
 * How config paths are resolved: {@code ~/} is the home directory; a relative path is taken
 * from the working directory when it exists there, else from the project directory (the
 * checkout the running jar or classes belong to, or {@code $TINYLLAMA_HOME}), so the embedded
 * demo recipe finds {@code samples/} wherever {@code tinyllama} is started.
 */
public final class ProjectPaths {

    private ProjectPaths() {
    }

    public static Path expand(String path) {
        if (path.equals("~") || path.startsWith("~/")) {
            return Path.of(System.getProperty("user.home") + path.substring(1));
        }
        return Path.of(path);
    }

    /** An existing file or directory, or where one will be created (relative to the working directory). */
    public static Path resolveOutput(String path) {
        Path expanded = expand(path);
        if (expanded.isAbsolute() || Files.exists(expanded)) {
            return expanded;
        }
        return projectHome().map(home -> home.resolve(expanded)).filter(Files::exists).orElse(expanded);
    }

    /** A file or glob that must already exist: the part before the first wildcard decides where it is. */
    public static String resolveInput(String glob) {
        Path expanded = expand(glob);
        if (expanded.isAbsolute()) {
            return expanded.toString();
        }
        String text = expanded.toString();
        int wildcard = firstWildcard(text);
        String fixed = wildcard < 0 ? text : text.substring(0, text.lastIndexOf('/', wildcard) + 1);
        Path anchor = Path.of(fixed.isEmpty() ? "." : fixed);
        if (Files.exists(anchor)) {
            return text;
        }
        return projectHome().filter(home -> Files.exists(home.resolve(anchor)))
                .map(home -> home.resolve(text).toString()).orElse(text);
    }

    private static int firstWildcard(String text) {
        int first = -1;
        for (char c : new char[] {'*', '?', '[', '{'}) {
            int i = text.indexOf(c);
            if (i >= 0 && (first < 0 || i < first)) {
                first = i;
            }
        }
        return first;
    }

    /** The checkout this code runs from: the nearest ancestor with a pom.xml and configs/. */
    public static Optional<Path> projectHome() {
        String env = System.getenv("TINYLLAMA_HOME");
        if (env != null && !env.isBlank()) {
            return Optional.of(Path.of(env));
        }
        try {
            Path start = Path.of(ProjectPaths.class.getProtectionDomain().getCodeSource().getLocation().toURI());
            for (Path dir = start; dir != null; dir = dir.getParent()) {
                if (Files.isRegularFile(dir.resolve("pom.xml")) && Files.isDirectory(dir.resolve("configs"))) {
                    return Optional.of(dir);
                }
            }
        } catch (URISyntaxException | SecurityException | NullPointerException e) {
            return Optional.empty();
        }
        return Optional.empty();
    }
}
