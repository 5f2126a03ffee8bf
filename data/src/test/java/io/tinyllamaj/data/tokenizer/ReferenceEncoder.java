package io.tinyllamaj.data.tokenizer;

import com.fasterxml.jackson.databind.ObjectMapper;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.TimeUnit;

/**
 * The independent reference: llama-tokenizer-js run in {@code node}, all texts in one process.
 * The npm package is fetched and verified by {@code scripts/fetch-tokenizer --package-only}
 * into ~/.cache/tinyllamaj when absent. A missing node or npm fails the test loudly: a
 * conformance test that skips itself proves nothing.
 */
final class ReferenceEncoder {

    private ReferenceEncoder() {
    }

    /** The ids llama-tokenizer-js gives each text (BOS first, leading space added). */
    static int[][] encode(List<String> texts, Path workDir) throws IOException, InterruptedException {
        Path root = repositoryRoot();
        String packageDir = run(workDir, List.of(root.resolve("scripts/fetch-tokenizer").toString(), "--package-only")).strip();
        ObjectMapper json = new ObjectMapper();
        Path textsFile = workDir.resolve("texts.json");
        Path idsFile = workDir.resolve("ids.json");
        json.writeValue(textsFile.toFile(), texts);
        run(workDir, List.of(node(), root.resolve("scripts/lib/llama-tokenizer-js.mjs").toString(), packageDir,
                "encode", textsFile.toString(), idsFile.toString()));
        return json.readValue(idsFile.toFile(), int[][].class);
    }

    private static String node() {
        for (String dir : System.getenv().getOrDefault("PATH", "").split(java.io.File.pathSeparator)) {
            if (Files.isExecutable(Path.of(dir, "node"))) {
                return Path.of(dir, "node").toString();
            }
        }
        throw new AssertionError("node is not on the PATH: the tokenizer conformance tests need Node.js (20 or newer) "
                + "and npm to run llama-tokenizer-js as the reference encoder");
    }

    private static String run(Path workDir, List<String> command) throws IOException, InterruptedException {
        Path log = workDir.resolve("reference.log");
        Process process = new ProcessBuilder(command).directory(workDir.toFile())
                .redirectError(log.toFile()).start();
        String out = new String(process.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        if (!process.waitFor(120, TimeUnit.SECONDS) || process.exitValue() != 0) {
            process.destroyForcibly();
            throw new AssertionError(String.join(" ", command) + " failed:\n" + Files.readString(log));
        }
        return out;
    }

    private static Path repositoryRoot() {
        for (Path dir = Path.of("").toAbsolutePath(); dir != null; dir = dir.getParent()) {
            if (Files.isRegularFile(dir.resolve("scripts/fetch-tokenizer"))) {
                return dir;
            }
        }
        throw new AssertionError("cannot find scripts/fetch-tokenizer above " + Path.of("").toAbsolutePath());
    }
}
