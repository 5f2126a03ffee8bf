package io.tinyllamaj.trainer.checkpoint;

import com.fasterxml.jackson.core.JacksonException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.tinyllamaj.kernels.Backend;
import io.tinyllamaj.kernels.Tensor;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.AtomicMoveNotSupportedException;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.HexFormat;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.function.Consumer;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;

/**
 * The checkpoints of one run: {@code <run>/checkpoints/step-NNNNNNNN/} and the {@code latest}
 * pointer beside them.
 *
 * <p>A checkpoint directory holds {@code params.f32}, {@code adam_m.f32}, {@code adam_v.f32}
 * (raw little-endian fp32, {@link io.tinyllamaj.model.ParameterLayout} order),
 * {@code state.json} (step, counters, data position, config) and {@code manifest.json}, which
 * lists every other file with its size and SHA-256. The write order is what makes a crash
 * harmless: everything goes into {@code step-N.tmp/}; each file is flushed to disk; the
 * manifest is written last and flushed; the directory is renamed to {@code step-N}; only then
 * is {@code latest} written to {@code latest.tmp} and renamed over the old one. Old
 * checkpoints are pruned by renaming them to {@code .deleting-*} before deleting, so a crash
 * while pruning never leaves a half-deleted directory under a checkpoint name.
 *
 * <p>On load every file is checked against the manifest; a mismatch is refused with the file
 * named. {@link #findResumable} follows {@code latest} and falls back to the newest checkpoint
 * that verifies when the pointer is missing, torn or points at a damaged checkpoint.
 */
public final class CheckpointStore {

    public static final String PARAMS = "params.f32";
    public static final String ADAM_M = "adam_m.f32";
    public static final String ADAM_V = "adam_v.f32";
    public static final String STATE = "state.json";
    public static final String MANIFEST = "manifest.json";
    public static final String LATEST = "latest";
    static final String FORMAT = "tinyllamaj-checkpoint";
    static final int VERSION = 1;

    /**
     * Test hook (RELIABILITY.md test 2): {@code POINT} or {@code POINT:STEP} halts the JVM at that
     * point of a checkpoint write (of that step): mid-shards, before-manifest or while-pruning.
     */
    static final String CRASH_ENV = "TINYLLAMA_TEST_CRASH_IN_CHECKPOINT";

    private static final Pattern NAME = Pattern.compile("step-(\\d{8,})");
    private static final int CHUNK_FLOATS = 1 << 20;
    private static final ObjectMapper JSON = new ObjectMapper().enable(SerializationFeature.INDENT_OUTPUT);

    private final Path directory;

    public CheckpointStore(Path runDirectory) {
        this.directory = runDirectory.resolve("checkpoints");
    }

    public Path directory() {
        return directory;
    }

    public static String name(long step) {
        return String.format("step-%08d", step);
    }

    /** What a checkpoint holds besides the three tensors. */
    public record Loaded(Path directory, long step, ObjectNode state) {
    }

    // ---- write ----

    /**
     * Writes a complete checkpoint for {@code step}, points {@code latest} at it and prunes to
     * the newest {@code keepLast}. Returns its directory.
     */
    public Path save(long step, Backend backend, Tensor params, Tensor m, Tensor v, ObjectNode state, int keepLast)
            throws IOException {
        Files.createDirectories(directory);
        String name = name(step);
        Path tmp = directory.resolve(name + ".tmp");
        deleteRecursively(tmp);
        Files.createDirectories(tmp);
        Map<String, FileEntry> files = new LinkedHashMap<>();
        files.put(PARAMS, writeTensor(tmp.resolve(PARAMS), backend, params));
        crashPoint("mid-shards", step);
        files.put(ADAM_M, writeTensor(tmp.resolve(ADAM_M), backend, m));
        files.put(ADAM_V, writeTensor(tmp.resolve(ADAM_V), backend, v));
        state.put("format", FORMAT).put("version", VERSION).put("step", step);
        files.put(STATE, writeBytes(tmp.resolve(STATE), JSON.writeValueAsBytes(state)));
        crashPoint("before-manifest", step);
        ObjectNode manifest = JSON.createObjectNode();
        manifest.put("format", FORMAT).put("version", VERSION).put("step", step);
        ObjectNode listed = manifest.putObject("files");
        files.forEach((file, entry) -> listed.putObject(file).put("bytes", entry.bytes()).put("sha256", entry.sha256()));
        writeBytes(tmp.resolve(MANIFEST), JSON.writeValueAsBytes(manifest));
        syncDirectory(tmp);

        Path target = directory.resolve(name);
        if (Files.exists(target)) {
            Path old = directory.resolve(".deleting-" + name);
            deleteRecursively(old);
            move(target, old);
            move(tmp, target);
            deleteRecursively(old);
        } else {
            move(tmp, target);
        }
        syncDirectory(directory);
        Path latestTmp = directory.resolve(LATEST + ".tmp");
        writeBytes(latestTmp, (name + "\n").getBytes(StandardCharsets.UTF_8));
        move(latestTmp, directory.resolve(LATEST));
        syncDirectory(directory);
        prune(keepLast, name, step);
        return target;
    }

    private record FileEntry(long bytes, String sha256) {
    }

    private static FileEntry writeTensor(Path file, Backend backend, Tensor tensor) throws IOException {
        MessageDigest digest = sha256();
        long length = tensor.length();
        float[] chunk = new float[(int) Math.min(CHUNK_FLOATS, length)];
        ByteBuffer bytes = ByteBuffer.allocate(chunk.length * Float.BYTES).order(ByteOrder.LITTLE_ENDIAN);
        try (FileChannel out = FileChannel.open(file, StandardOpenOption.CREATE_NEW, StandardOpenOption.WRITE)) {
            for (long offset = 0; offset < length; offset += chunk.length) {
                int n = (int) Math.min(chunk.length, length - offset);
                backend.download(tensor.slice(offset, n), chunk, 0, n);
                bytes.clear();
                bytes.asFloatBuffer().put(chunk, 0, n);
                bytes.limit(n * Float.BYTES);
                digest.update(bytes.duplicate());
                while (bytes.hasRemaining()) {
                    out.write(bytes);
                }
            }
            out.force(true);
        }
        return new FileEntry(length * Float.BYTES, HexFormat.of().formatHex(digest.digest()));
    }

    private static FileEntry writeBytes(Path file, byte[] content) throws IOException {
        try (FileChannel out = FileChannel.open(file, StandardOpenOption.CREATE, StandardOpenOption.WRITE,
                StandardOpenOption.TRUNCATE_EXISTING)) {
            ByteBuffer buffer = ByteBuffer.wrap(content);
            while (buffer.hasRemaining()) {
                out.write(buffer);
            }
            out.force(true);
        }
        return new FileEntry(content.length, HexFormat.of().formatHex(sha256().digest(content)));
    }

    private void prune(int keepLast, String latestName, long step) throws IOException {
        List<Path> complete = completeCheckpoints();
        int excess = complete.size() - keepLast;
        for (Path old : complete) {
            if (excess <= 0) {
                break;
            }
            if (old.getFileName().toString().equals(latestName)) {
                continue;
            }
            Path doomed = directory.resolve(".deleting-" + old.getFileName());
            move(old, doomed);
            crashPoint("while-pruning", step);
            deleteRecursively(doomed);
            excess--;
        }
    }

    private static void crashPoint(String point, long step) {
        String wanted = System.getenv(CRASH_ENV);
        if (wanted != null && (wanted.equals(point) || wanted.equals(point + ":" + step))) {
            System.err.println("tinyllama: test hook " + CRASH_ENV + "=" + point + ": halting");
            Runtime.getRuntime().halt(86);
        }
    }

    // ---- find ----

    /** Directories named step-N that have a manifest, oldest first; none is verified here. */
    public List<Path> completeCheckpoints() throws IOException {
        if (!Files.isDirectory(directory)) {
            return List.of();
        }
        List<Path> found = new ArrayList<>();
        try (DirectoryStream<Path> entries = Files.newDirectoryStream(directory)) {
            for (Path entry : entries) {
                if (NAME.matcher(entry.getFileName().toString()).matches() && Files.isRegularFile(entry.resolve(MANIFEST))) {
                    found.add(entry);
                }
            }
        }
        found.sort(Comparator.comparingLong(CheckpointStore::stepOf));
        return found;
    }

    static long stepOf(Path checkpoint) {
        Matcher matcher = NAME.matcher(checkpoint.getFileName().toString());
        if (!matcher.matches()) {
            throw new IllegalArgumentException(checkpoint + " is not a checkpoint directory (expected a name like step-00001000)");
        }
        return Long.parseLong(matcher.group(1));
    }

    /** What {@code latest} names, if it is present and well formed. */
    Optional<Path> latestPointer() {
        try {
            String name = Files.readString(directory.resolve(LATEST), StandardCharsets.UTF_8).trim();
            return NAME.matcher(name).matches() ? Optional.of(directory.resolve(name)) : Optional.empty();
        } catch (IOException e) {
            return Optional.empty();
        }
    }

    /**
     * The checkpoint to resume from: the one {@code latest} names when it verifies, else the
     * newest one that verifies. Every checkpoint passed over is reported through {@code warn}.
     * Empty when the run has no checkpoint; an error when it has some and none verifies.
     */
    public Optional<Path> findResumable(Consumer<String> warn) throws IOException {
        List<Path> complete = completeCheckpoints();
        Optional<Path> latest = latestPointer();
        if (latest.isPresent()) {
            try {
                verify(latest.get());
                return latest;
            } catch (CorruptCheckpointException e) {
                warn.accept(e.getMessage() + "; looking for an older complete checkpoint");
            }
        } else if (!complete.isEmpty()) {
            warn.accept(directory.resolve(LATEST) + " is missing or torn; using the newest complete checkpoint");
        }
        for (Path candidate : complete.reversed()) {
            if (latest.isPresent() && candidate.equals(latest.get())) {
                continue;
            }
            try {
                verify(candidate);
                return Optional.of(candidate);
            } catch (CorruptCheckpointException e) {
                warn.accept(e.getMessage());
            }
        }
        boolean anyStarted;
        try (Stream<Path> entries = Files.isDirectory(directory) ? Files.list(directory) : Stream.empty()) {
            anyStarted = entries.anyMatch(p -> NAME.matcher(p.getFileName().toString()).matches());
        }
        if (!complete.isEmpty() || (anyStarted && latest.isPresent())) {
            throw new CorruptCheckpointException("no checkpoint under " + directory + " passes its checksums");
        }
        return Optional.empty();
    }

    /** The newest complete checkpoint older than {@code checkpoint} that verifies, for messages. */
    public Optional<Path> previousGood(Path checkpoint) throws IOException {
        long step = stepOf(checkpoint);
        for (Path candidate : completeCheckpoints().reversed()) {
            if (stepOf(candidate) < step) {
                try {
                    verify(candidate);
                    return Optional.of(candidate);
                } catch (CorruptCheckpointException ignored) {
                    // keep looking further back
                }
            }
        }
        return Optional.empty();
    }

    // ---- read ----

    /** Checks every file against the manifest; throws naming the first file that differs. */
    public static JsonNode verify(Path checkpoint) throws IOException {
        Path manifestFile = checkpoint.resolve(MANIFEST);
        JsonNode manifest;
        try {
            manifest = JSON.readTree(manifestFile.toFile());
        } catch (NoSuchFileException | java.io.FileNotFoundException e) {
            throw new CorruptCheckpointException("checkpoint " + checkpoint + " is incomplete: no " + MANIFEST
                    + " (it was being written when the run stopped)");
        } catch (JacksonException e) {
            throw new CorruptCheckpointException("checkpoint " + checkpoint + ": " + MANIFEST + " is not valid JSON");
        }
        if (!FORMAT.equals(manifest.path("format").asText()) || manifest.path("version").asInt() != VERSION) {
            throw new CorruptCheckpointException("checkpoint " + checkpoint + ": " + MANIFEST + " is not a "
                    + FORMAT + " version " + VERSION + " manifest");
        }
        for (String required : List.of(PARAMS, ADAM_M, ADAM_V, STATE)) {
            if (!manifest.path("files").has(required)) {
                throw new CorruptCheckpointException("checkpoint " + checkpoint + ": " + MANIFEST + " does not list " + required);
            }
        }
        for (Map.Entry<String, JsonNode> entry : manifest.path("files").properties()) {
            Path file = checkpoint.resolve(entry.getKey());
            long bytes = entry.getValue().path("bytes").asLong(-1);
            String expected = entry.getValue().path("sha256").asText();
            if (!Files.isRegularFile(file)) {
                throw new CorruptCheckpointException("checkpoint file " + file + " is missing");
            }
            long size = Files.size(file);
            if (size != bytes) {
                throw new CorruptCheckpointException("checkpoint file " + file + " has " + size + " bytes, the manifest says " + bytes);
            }
            String actual = sha256Of(file);
            if (!actual.equals(expected)) {
                throw new CorruptCheckpointException("checkpoint file " + file + " fails its SHA-256 check (damaged: "
                        + actual.substring(0, 12) + "..., manifest " + expected.substring(0, Math.min(12, expected.length())) + "...)");
            }
        }
        return manifest;
    }

    /** Verifies, then reads the tensors into {@code params}, {@code m}, {@code v}. */
    public static Loaded load(Path checkpoint, Backend backend, Tensor params, Tensor m, Tensor v) throws IOException {
        verify(checkpoint);
        readTensor(checkpoint.resolve(PARAMS), backend, params);
        readTensor(checkpoint.resolve(ADAM_M), backend, m);
        readTensor(checkpoint.resolve(ADAM_V), backend, v);
        return new Loaded(checkpoint, stepOf(checkpoint), readState(checkpoint));
    }

    public static ObjectNode readState(Path checkpoint) throws IOException {
        return (ObjectNode) JSON.readTree(checkpoint.resolve(STATE).toFile());
    }

    public static void readTensor(Path file, Backend backend, Tensor tensor) throws IOException {
        long length = tensor.length();
        if (Files.size(file) != length * Float.BYTES) {
            throw new IllegalArgumentException("cannot resume: " + file + " holds " + Files.size(file) / Float.BYTES
                    + " values, the model has " + length);
        }
        float[] chunk = new float[(int) Math.min(CHUNK_FLOATS, length)];
        ByteBuffer bytes = ByteBuffer.allocate(chunk.length * Float.BYTES).order(ByteOrder.LITTLE_ENDIAN);
        try (FileChannel in = FileChannel.open(file, StandardOpenOption.READ)) {
            for (long offset = 0; offset < length; offset += chunk.length) {
                int n = (int) Math.min(chunk.length, length - offset);
                bytes.clear();
                bytes.limit(n * Float.BYTES);
                while (bytes.hasRemaining()) {
                    if (in.read(bytes) < 0) {
                        throw new IOException(file + " ended early");
                    }
                }
                bytes.flip();
                bytes.asFloatBuffer().get(chunk, 0, n);
                backend.upload(tensor.slice(offset, n), chunk, 0, n);
            }
        }
    }

    // ---- files ----

    private static String sha256Of(Path file) throws IOException {
        MessageDigest digest = sha256();
        ByteBuffer buffer = ByteBuffer.allocateDirect(1 << 20);
        try (FileChannel in = FileChannel.open(file, StandardOpenOption.READ)) {
            while (in.read(buffer) >= 0) {
                buffer.flip();
                digest.update(buffer);
                buffer.clear();
            }
        }
        return HexFormat.of().formatHex(digest.digest());
    }

    private static MessageDigest sha256() {
        try {
            return MessageDigest.getInstance("SHA-256");
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException(e);
        }
    }

    private static void move(Path from, Path to) throws IOException {
        try {
            Files.move(from, to, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
        } catch (AtomicMoveNotSupportedException e) {
            Files.move(from, to, StandardCopyOption.REPLACE_EXISTING);
        }
    }

    /** Makes renames inside {@code dir} durable (a no-op where directories cannot be opened). */
    private static void syncDirectory(Path dir) {
        try (FileChannel channel = FileChannel.open(dir, StandardOpenOption.READ)) {
            channel.force(true);
        } catch (IOException | UnsupportedOperationException ignored) {
            // not every file system lets a directory be opened; the rename order still holds
        }
    }

    /** Removes leftovers of interrupted writes and prunes: {@code *.tmp} and {@code .deleting-*}. */
    public void cleanLeftovers() throws IOException {
        if (!Files.isDirectory(directory)) {
            return;
        }
        try (DirectoryStream<Path> entries = Files.newDirectoryStream(directory)) {
            for (Path entry : entries) {
                String name = entry.getFileName().toString();
                if (name.endsWith(".tmp") || name.startsWith(".deleting-")) {
                    deleteRecursively(entry);
                }
            }
        }
    }

    static void deleteRecursively(Path path) throws IOException {
        if (!Files.exists(path)) {
            return;
        }
        try (Stream<Path> walk = Files.walk(path)) {
            walk.sorted(Comparator.reverseOrder()).forEach(p -> {
                try {
                    Files.delete(p);
                } catch (IOException e) {
                    throw new UncheckedIOException(e);
                }
            });
        }
    }
}
