package io.tinyllamaj.trainer;

import com.fasterxml.jackson.databind.JsonNode;
import io.tinyllamaj.trainer.checkpoint.CheckpointStore;
import io.tinyllamaj.trainer.run.MetricsLog;
import io.tinyllamaj.trainer.run.PretrainRun;
import io.tinyllamaj.trainer.run.StopSignal;
import io.tinyllamaj.trainer.run.Trainer;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.HexFormat;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.TreeMap;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertEquals;

/** Tiny runs for the tests: lit-gpt .bin data written on the fly and a recipe around it. */
public final class TestRuns {

    private TestRuns() {
    }

    /**
     * Writes two sources of lit-gpt uint16 chunks below {@code dir} whose tokens follow a
     * learnable pattern (a noisy counter modulo {@code vocab}), and returns a recipe for them.
     */
    public static Path writeRecipe(Path dir, String preset, int vocab, int seqLen, int microBatch, int globalBatch,
                                   int maxSteps, String extra) throws IOException {
        writeSource(dir.resolve("prose"), vocab, 40_000, 1);
        writeSource(dir.resolve("code"), vocab, 30_000, 2);
        String yaml = """
                model:
                  preset: %s
                data:
                  val_blocks: 2
                  sources:
                    - {name: prose, path: %s, weight: 0.7}
                    - {name: code, path: %s, weight: 0.3}
                train:
                  seq_len: %d
                  micro_batch_size: %d
                  global_batch_size: %d
                  max_steps: %d
                  lr: 1.0e-2
                  min_lr: 1.0e-3
                  warmup_steps: 3
                eval:
                  interval: 4
                checkpoint:
                  interval: 4
                  keep_last: 2
                logging:
                  interval: 1
                """.formatted(preset, dir.resolve("prose"), dir.resolve("code"), seqLen, microBatch, globalBatch, maxSteps)
                + extra;
        Path recipe = dir.resolve("recipe.yaml");
        Files.writeString(recipe, yaml);
        return recipe;
    }

    static void writeSource(Path dir, int vocab, int tokens, long seed) throws IOException {
        Files.createDirectories(dir);
        SplittableRandom random = new SplittableRandom(seed);
        int chunk = tokens / 2;
        int value = 0;
        for (int c = 0; c < 2; c++) {
            ByteBuffer buffer = ByteBuffer.allocate(24 + 2 * chunk).order(ByteOrder.LITTLE_ENDIAN);
            buffer.put("LITPKDS".getBytes(StandardCharsets.US_ASCII)).putLong(1).put((byte) 8).putLong(chunk);
            for (int i = 0; i < chunk; i++) {
                value = random.nextInt(8) == 0 ? random.nextInt(vocab) : (value + (int) seed) % vocab;
                buffer.putShort((short) value);
            }
            Files.write(dir.resolve("train_" + c + ".bin"), buffer.array());
        }
    }

    /** Runs pretrain in this JVM; returns the outcome and keeps the log in {@code log}. */
    public static Trainer.Outcome pretrain(Path recipe, Path out, String resume, StopSignal stop, Trainer.Hooks hooks,
                                           ByteArrayOutputStream log, String... overrides) throws IOException {
        PrintStream stream = new PrintStream(log, true, StandardCharsets.UTF_8);
        return new PretrainRun(recipe, List.of(overrides), out, resume, null).execute(stop, hooks, stream);
    }

    public static Trainer.Outcome pretrain(Path recipe, Path out, String resume, String... overrides) throws IOException {
        return pretrain(recipe, out, resume, StopSignal.none(), Trainer.Hooks.NONE, new ByteArrayOutputStream(), overrides);
    }

    /** The fields of metrics.jsonl that must repeat exactly (not timings). */
    public static List<String> deterministicMetrics(Path runDirectory) throws IOException {
        List<String> lines = new ArrayList<>();
        for (JsonNode record : MetricsLog.read(runDirectory.resolve(MetricsLog.FILE))) {
            lines.add("step=" + record.get("step") + " loss=" + bits(record.get("loss"))
                    + " loss_mean=" + bits(record.get("loss_mean")) + " val_loss=" + bits(record.get("val_loss"))
                    + " lr=" + bits(record.get("lr")) + " grad_norm=" + bits(record.get("grad_norm"))
                    + " tokens=" + record.get("tokens") + " first_token=" + record.get("first_token")
                    + " per_source=" + record.get("tokens_per_source") + " skipped_steps=" + record.get("skipped_steps"));
        }
        return lines;
    }

    private static String bits(JsonNode value) {
        return value == null ? "-" : Long.toHexString(Double.doubleToRawLongBits(value.asDouble()));
    }

    public static void assertSameRun(Path expected, Path actual) throws IOException {
        List<String> a = deterministicMetrics(expected), b = deterministicMetrics(actual);
        assertEquals(String.join("\n", a), String.join("\n", b), "metrics after resume differ from the uninterrupted run");
    }

    /** Every file below {@code root} (relative path) with the SHA-256 of its bytes. */
    public static Map<Path, String> fileDigests(Path root) throws Exception {
        Map<Path, String> files = new TreeMap<>();
        try (var walk = Files.walk(root)) {
            for (Path p : walk.filter(Files::isRegularFile).toList()) {
                files.put(root.relativize(p), HexFormat.of().formatHex(MessageDigest.getInstance("SHA-256").digest(Files.readAllBytes(p))));
            }
        }
        return files;
    }

    /** A child JVM running {@code tinyllama pretrain ...} with this test's classpath. */
    public static ProcessBuilder childPretrain(Path logFile, String... args) {
        List<String> command = new ArrayList<>();
        command.add(Path.of(System.getProperty("java.home"), "bin", "java").toString());
        command.add("--add-modules=jdk.incubator.vector");
        command.add("--enable-native-access=ALL-UNNAMED");
        command.add("--add-opens=java.base/java.nio=ALL-UNNAMED");
        command.add("-Xmx1g");
        command.add("-cp");
        command.add(System.getProperty("java.class.path"));
        command.add("io.tinyllamaj.trainer.cli.Main");
        command.add("pretrain");
        command.addAll(List.of(args));
        return new ProcessBuilder(command).redirectErrorStream(true).redirectOutput(logFile.toFile());
    }

    /** {@code mpirun -np ranks} of {@code tinyllama pretrain ...} with this test's classpath, its output to {@code logFile}. */
    public static ProcessBuilder mpirunPretrain(Path logFile, int ranks, String... args) {
        List<String> command = new ArrayList<>(List.of("mpirun", "--allow-run-as-root", "--oversubscribe", "-np", Integer.toString(ranks)));
        command.addAll(rankPretrain(args));
        return new ProcessBuilder(command).redirectErrorStream(true).redirectOutput(logFile.toFile());
    }

    /** One rank's command line for a launcher (mpirun, srun): {@code tinyllama pretrain ...} in a JVM with this test's classpath. */
    public static List<String> rankPretrain(String... args) {
        List<String> command = new ArrayList<>(List.of(Path.of(System.getProperty("java.home"), "bin", "java").toString(),
                "--add-modules=jdk.incubator.vector", "--enable-native-access=ALL-UNNAMED",
                "--add-opens=java.base/java.nio=ALL-UNNAMED", "-Xmx512m", "-XX:+UseSerialGC",
                "-cp", System.getProperty("java.class.path"), "io.tinyllamaj.trainer.cli.Main", "pretrain"));
        command.addAll(List.of(args));
        return command;
    }

    /** Waits until metrics.jsonl of {@code run} reaches {@code step}; false if the process ended first. */
    public static boolean awaitStep(Process process, Path run, long step, long timeoutMillis) throws Exception {
        long deadline = System.currentTimeMillis() + timeoutMillis;
        Path metrics = run.resolve(MetricsLog.FILE);
        while (System.currentTimeMillis() < deadline) {
            if (Files.exists(metrics)) {
                List<JsonNode> records = MetricsLog.read(metrics);
                if (!records.isEmpty() && records.getLast().path("step").asLong() >= step) {
                    return true;
                }
            }
            if (!process.isAlive()) {
                return false;
            }
            Thread.sleep(10);
        }
        return false;
    }

    /** Whether {@code program} is an executable in a directory of $PATH. */
    public static boolean onPath(String program) {
        String path = System.getenv("PATH");
        if (path == null) {
            return false;
        }
        for (String dir : path.split(java.io.File.pathSeparator)) {
            if (Files.isExecutable(Path.of(dir, program))) {
                return true;
            }
        }
        return false;
    }

    /** A copy of a run directory as it was after the checkpoint of {@code step}: later checkpoints removed. */
    public static Path copyUpTo(Path run, Path copy, long step) throws IOException {
        try (Stream<Path> walk = Files.walk(run)) {
            for (Path p : walk.sorted(Comparator.naturalOrder()).toList()) {
                Path target = copy.resolve(run.relativize(p).toString());
                if (Files.isDirectory(p)) {
                    Files.createDirectories(target);
                } else {
                    Files.copy(p, target);
                }
            }
        }
        Path checkpoints = copy.resolve("checkpoints");
        try (Stream<Path> entries = Files.list(checkpoints)) {
            for (Path c : entries.filter(p -> p.getFileName().toString().startsWith("step-")).toList()) {
                if (CheckpointStore.stepOf(c) > step) {
                    try (Stream<Path> files = Files.walk(c)) {
                        for (Path f : files.sorted(Comparator.reverseOrder()).toList()) {
                            Files.delete(f);
                        }
                    }
                }
            }
        }
        Files.writeString(checkpoints.resolve(CheckpointStore.LATEST), CheckpointStore.name(step) + "\n");
        return copy;
    }
}
