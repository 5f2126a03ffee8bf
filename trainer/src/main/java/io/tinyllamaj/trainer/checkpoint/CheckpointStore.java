package io.tinyllamaj.trainer.checkpoint;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.tinyllamaj.files.DurableFiles;
import io.tinyllamaj.kernels.Backend;
import io.tinyllamaj.kernels.Tensor;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
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
 * <p><b>Several ranks.</b> The weights are whole on every rank and rank 0 writes them once. The
 * AdamW moments are one flat buffer in the same order, split by rank ({@code Shard}): each
 * rank that holds a distinct range writes it, in parallel, as {@code adam_m-rankNNNNN.f32}
 * and {@code adam_v-rankNNNNN.f32} plus {@code part-rankNNNNN.json} (its files' sizes and
 * SHA-256 and the ranges they hold). After a barrier rank 0 merges the parts into the
 * manifest, whose {@code moments} section names the file and range of every piece (they must
 * tile the buffer), then renames and moves {@code latest}; a last barrier returns every rank
 * with the checkpoint complete. A reader takes any range from the pieces that overlap it, so
 * a checkpoint loads at any world size; ranges are whole files for a single rank and ddp,
 * which keeps the single-file format above. The run directory must be on a file system all
 * ranks share.
 *
 * <p>On load every file is checked against the manifest; a mismatch is refused with the file
 * named. {@link #findResumable} follows {@code latest} and falls back to the newest checkpoint
 * that verifies when the pointer is missing, torn, or names a damaged or deleted checkpoint.
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
     * Test hook (ChildProcessTest): {@code POINT} or {@code POINT:STEP} halts the JVM at that
     * point of a checkpoint write (of that step): mid-shards, before-manifest or while-pruning.
     */
    static final String CRASH_ENV = "TINYLLAMA_TEST_CRASH_IN_CHECKPOINT";

    private static final Pattern NAME = Pattern.compile("step-(\\d{8,18})"); // at most 18 digits: always a long
    private static final int CHUNK_FLOATS = 1 << 20;
    private static final ObjectMapper JSON = new ObjectMapper().enable(SerializationFeature.INDENT_OUTPUT);

    private final Path directory;
    private final DurableFiles disk;

    public CheckpointStore(Path runDirectory) {
        this(runDirectory, DurableFiles.SYSTEM);
    }

    /** A store that writes through {@code disk} (tests pass one that fails at a chosen file). */
    public CheckpointStore(Path runDirectory, DurableFiles disk) {
        this.directory = runDirectory.resolve("checkpoints");
        this.disk = disk;
    }

    public Path directory() {
        return directory;
    }

    public static String name(long step) {
        return String.format("step-%08d", step);
    }

    /**
     * This process's part in writing a checkpoint: its rank (0 writes the weights, the state
     * and the manifest), whether it writes its range of the moments, and a barrier over all
     * writing processes.
     */
    public record Writer(int rank, boolean writesMoments, Runnable barrier) {
        public static final Writer SINGLE = new Writer(0, true, () -> { });
    }

    /** What a checkpoint holds besides the three tensors. */
    public record Loaded(Path directory, long step, CheckpointJson state) {
    }

    // ---- write ----

    /**
     * Writes a complete checkpoint for {@code step}, points {@code latest} at it and prunes to
     * the newest {@code keepLast}. Returns its directory.
     */
    public Path save(long step, Backend backend, Tensor params, Tensor m, Tensor v, ObjectNode state, int keepLast)
            throws IOException {
        return save(step, backend, params, m, v, 0, Writer.SINGLE, state, Retention.last(keepLast));
    }

    /**
     * Writes one checkpoint with all ranks; every rank calls this, {@code m} and {@code v} being
     * its moments for the range starting at {@code momentOffset} of the flat buffer. Returns
     * (on every rank, after the last barrier) the complete checkpoint's directory. A failed
     * write (a full disk) removes the unfinished directory at once and names the step; the
     * previous checkpoint and {@code latest} are untouched.
     */
    public Path save(long step, Backend backend, Tensor params, Tensor m, Tensor v, long momentOffset, Writer writer,
                     ObjectNode state, Retention retention) throws IOException {
        Path tmp = DurableFiles.tempFor(directory.resolve(name(step)));
        try {
            return write(step, backend, params, m, v, momentOffset, writer, state, retention, tmp);
        } catch (IOException e) {
            removeQuietly(tmp); // its space may be what the next attempt needs
            throw new IOException("checkpoint step " + step + ": " + e.getMessage(), e);
        }
    }

    private Path write(long step, Backend backend, Tensor params, Tensor m, Tensor v, long momentOffset, Writer writer,
                       ObjectNode state, Retention retention, Path tmp) throws IOException {
        String name = name(step);
        boolean lead = writer.rank() == 0;
        if (lead) {
            DurableFiles.createDirectories(directory);
            deleteRecursively(tmp);
            DurableFiles.createDirectories(tmp);
        }
        writer.barrier().run();
        if (!Files.isDirectory(tmp)) {
            throw new IOException("rank " + writer.rank() + " cannot see " + tmp + ", which rank 0 created: the run directory"
                    + " must be on a file system every rank shares");
        }
        Map<String, FileEntry> files = new LinkedHashMap<>();
        ObjectNode pieces = JSON.createObjectNode();
        if (lead) {
            files.put(PARAMS, writeTensor(tmp.resolve(PARAMS), backend, params));
            crashPoint("mid-shards", step);
        }
        if (writer.writesMoments()) {
            boolean whole = momentOffset == 0 && m.length() == params.length();
            for (Map.Entry<String, Tensor> moment : List.of(Map.entry(ADAM_M, m), Map.entry(ADAM_V, v))) {
                String file = whole ? moment.getKey() : momentFile(moment.getKey(), writer.rank());
                files.put(file, writeTensor(tmp.resolve(file), backend, moment.getValue()));
                pieces.withArray(moment.getKey()).addObject().put("file", file).put("offset", momentOffset)
                        .put("length", moment.getValue().length());
            }
            if (!lead) {
                ObjectNode part = JSON.createObjectNode();
                ObjectNode listed = part.putObject("files");
                files.forEach((file, entry) -> listed.putObject(file).put("bytes", entry.bytes()).put("sha256", entry.sha256()));
                part.set("moments", pieces);
                writeBytes(tmp.resolve(partFile(writer.rank())), JSON.writeValueAsBytes(part));
            }
        }
        if (lead) {
            state.put("format", FORMAT).put("version", VERSION).put("step", step);
            files.put(STATE, writeBytes(tmp.resolve(STATE), JSON.writeValueAsBytes(state)));
        }
        writer.barrier().run();
        Path target = directory.resolve(name);
        if (lead) {
            mergeParts(tmp, files, pieces);
            crashPoint("before-manifest", step);
            ObjectNode manifest = JSON.createObjectNode();
            manifest.put("format", FORMAT).put("version", VERSION).put("step", step);
            ObjectNode listed = manifest.putObject("files");
            files.forEach((file, entry) -> listed.putObject(file).put("bytes", entry.bytes()).put("sha256", entry.sha256()));
            if (!files.containsKey(ADAM_M)) {
                manifest.set("moments", pieces);
                requireTiling(tmp, new CheckpointJson(tmp.resolve(MANIFEST), "moments.", pieces), params.length());
            }
            writeBytes(tmp.resolve(MANIFEST), JSON.writeValueAsBytes(manifest));
            DurableFiles.syncDirectory(tmp);
            publish(tmp, target, name, step, retention);
        }
        writer.barrier().run();
        return target;
    }

    static String momentFile(String moment, int rank) {
        return moment.replace(".f32", String.format("-rank%05d.f32", rank));
    }

    private static String partFile(int rank) {
        return String.format("part-rank%05d.json", rank);
    }

    /** Adds the other ranks' files and moment pieces, from their part files, to rank 0's. */
    private static void mergeParts(Path tmp, Map<String, FileEntry> files, ObjectNode pieces) throws IOException {
        List<Path> parts;
        try (Stream<Path> entries = Files.list(tmp)) {
            parts = entries.filter(p -> p.getFileName().toString().matches("part-rank\\d{5}\\.json")).sorted().toList();
        }
        for (Path part : parts) {
            byte[] bytes = Files.readAllBytes(part);
            CheckpointJson tree = CheckpointJson.parse(part, bytes);
            for (Map.Entry<String, CheckpointJson> file : tree.object("files").entries()) {
                files.put(file.getKey(), new FileEntry(file.getValue().count("bytes"), file.getValue().text("sha256")));
            }
            for (Map.Entry<String, JsonNode> moment : tree.object("moments").node().properties()) {
                moment.getValue().forEach(piece -> pieces.withArray(moment.getKey()).add(piece));
            }
            files.put(part.getFileName().toString(), new FileEntry(bytes.length, HexFormat.of().formatHex(sha256().digest(bytes))));
        }
    }

    /** One file's range {@code [offset, offset + length)} of a moment's flat buffer. */
    private record Piece(String file, long offset, long length) {
    }

    private static List<Piece> pieces(CheckpointJson moments, String moment) throws CorruptCheckpointException {
        List<Piece> pieces = new ArrayList<>();
        for (CheckpointJson piece : moments.objects(moment)) {
            pieces.add(new Piece(piece.text("file"), piece.count("offset"), piece.count("length")));
        }
        return pieces;
    }

    /** The pieces of each moment must cover [0, n) exactly once, or a rank's shard is missing. */
    private static void requireTiling(Path checkpoint, CheckpointJson moments, long n) throws CorruptCheckpointException {
        for (String moment : List.of(ADAM_M, ADAM_V)) {
            List<Piece> sorted = new ArrayList<>(pieces(moments, moment));
            sorted.sort(Comparator.comparingLong(Piece::offset));
            long next = 0;
            for (Piece piece : sorted) {
                if (piece.offset() != next) {
                    throw new CorruptCheckpointException("checkpoint " + checkpoint + ": the " + moment + " shards leave values "
                            + next + ".." + (piece.offset() - 1) + " uncovered (a rank's shard is missing)");
                }
                if (piece.length() > n - next) {
                    throw new CorruptCheckpointException("checkpoint " + checkpoint + ": the " + moment + " shard " + piece.file()
                            + " runs past the model's " + n + " values");
                }
                next += piece.length();
            }
            if (next != n) {
                throw new CorruptCheckpointException("checkpoint " + checkpoint + ": the " + moment + " shards cover " + next
                        + " of the model's " + n + " values");
            }
        }
    }

    /** Renames the finished directory into place, then moves {@code latest} to it, then prunes. */
    private void publish(Path tmp, Path target, String name, long step, Retention retention) throws IOException {
        if (Files.exists(target)) {
            Path old = directory.resolve(".deleting-" + name);
            deleteRecursively(old);
            DurableFiles.move(target, old);
            DurableFiles.move(tmp, target);
            deleteRecursively(old);
        } else {
            DurableFiles.move(tmp, target);
        }
        DurableFiles.syncDirectory(directory);
        disk.replace(directory.resolve(LATEST), (name + "\n").getBytes(StandardCharsets.UTF_8));
        prune(retention, step);
    }

    private record FileEntry(long bytes, String sha256) {
    }

    private FileEntry writeTensor(Path file, Backend backend, Tensor tensor) throws IOException {
        MessageDigest digest = sha256();
        long length = tensor.length();
        float[] chunk = new float[(int) Math.min(CHUNK_FLOATS, length)];
        ByteBuffer bytes = ByteBuffer.allocate(chunk.length * Float.BYTES).order(ByteOrder.LITTLE_ENDIAN);
        disk.write(file, out -> {
            for (long offset = 0; offset < length; offset += chunk.length) {
                int n = (int) Math.min(chunk.length, length - offset);
                backend.download(tensor.slice(offset, n), chunk, 0, n);
                bytes.clear();
                bytes.asFloatBuffer().put(chunk, 0, n);
                bytes.limit(n * Float.BYTES);
                digest.update(bytes.duplicate());
                DurableFiles.writeFully(out, bytes);
            }
        });
        return new FileEntry(length * Float.BYTES, HexFormat.of().formatHex(digest.digest()));
    }

    private FileEntry writeBytes(Path file, byte[] content) throws IOException {
        disk.write(file, content);
        return new FileEntry(content.length, HexFormat.of().formatHex(sha256().digest(content)));
    }

    private void prune(Retention retention, long step) throws IOException {
        List<Path> complete = completeCheckpoints();
        List<Long> doomed = retention.prune(complete.stream().map(CheckpointStore::stepOf).toList(), step);
        for (Path old : complete) {
            if (!doomed.contains(stepOf(old))) {
                continue;
            }
            Path renamed = directory.resolve(".deleting-" + old.getFileName());
            DurableFiles.move(old, renamed);
            crashPoint("while-pruning", step);
            deleteRecursively(renamed);
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

    /** Whether {@code name} is a checkpoint directory's: step-N with 8 to 18 digits. */
    public static boolean isStepName(String name) {
        return NAME.matcher(name).matches();
    }

    public static long stepOf(Path checkpoint) {
        Matcher matcher = NAME.matcher(checkpoint.getFileName().toString());
        if (!matcher.matches()) {
            throw new IllegalArgumentException(checkpoint + " is not a checkpoint directory (expected a name like step-00001000)");
        }
        return Long.parseLong(matcher.group(1));
    }

    /**
     * What the first checkpoint write would trip over, named before any step runs: a file where
     * checkpoints/ goes, and a directory in place of {@code latest}, which a rename replaces at
     * every checkpoint.
     */
    public void requireWritable() {
        if (Files.exists(directory) && !Files.isDirectory(directory)) {
            throw new IllegalArgumentException(directory + " is a file where the run keeps its checkpoints; move it away");
        }
        if (Files.isDirectory(directory.resolve(LATEST), LinkOption.NOFOLLOW_LINKS)) {
            throw new IllegalArgumentException(directory.resolve(LATEST) + " is a directory where the run keeps a one-line pointer "
                    + "file; move it away");
        }
    }

    /** What {@code latest} names, if it is present and well formed. */
    public Optional<Path> latestPointer() {
        Path pointer = directory.resolve(LATEST);
        try {
            // a pipe or a link to /dev/zero would block or fill the heap: only a small regular file is read
            if (!Files.isRegularFile(pointer) || Files.size(pointer) > 256) {
                return Optional.empty();
            }
            String name = Files.readString(pointer, StandardCharsets.UTF_8).trim();
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
        if (latest.isPresent() && !Files.isDirectory(latest.get())) {
            // a checkpoint deleted by hand (a rollback): the pointer is stale, not the run
            warn.accept(directory.resolve(LATEST) + " names " + latest.get().getFileName()
                    + ", which does not exist; using the newest complete checkpoint");
        } else if (latest.isPresent()) {
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
    public static CheckpointJson verify(Path checkpoint) throws IOException {
        if (!Files.isDirectory(checkpoint)) {
            throw new NoSuchFileException(checkpoint.toString(), null, "no such checkpoint or run directory");
        }
        Path manifestFile = checkpoint.resolve(MANIFEST);
        CheckpointJson manifest;
        try {
            manifest = CheckpointJson.read(manifestFile);
        } catch (NoSuchFileException e) {
            throw new CorruptCheckpointException("checkpoint " + checkpoint + " is incomplete: no " + MANIFEST
                    + " (it was being written when the run stopped)");
        }
        if (!FORMAT.equals(manifest.node().path("format").asText()) || manifest.node().path("version").asInt() != VERSION) {
            throw new CorruptCheckpointException("checkpoint " + checkpoint + ": " + MANIFEST + " is not a "
                    + FORMAT + " version " + VERSION + " manifest");
        }
        requireStepOfDirectory(checkpoint, manifest);
        CheckpointJson files = manifest.object("files");
        boolean sharded = manifest.has("moments");
        for (String required : sharded ? List.of(PARAMS, STATE) : List.of(PARAMS, ADAM_M, ADAM_V, STATE)) {
            if (!files.has(required)) {
                throw new CorruptCheckpointException("checkpoint " + checkpoint + ": " + MANIFEST + " does not list " + required);
            }
        }
        for (Map.Entry<String, CheckpointJson> entry : files.entries()) {
            requireNameInside(manifestFile, entry.getKey());
        }
        if (sharded) {
            CheckpointJson moments = manifest.object("moments");
            for (String moment : List.of(ADAM_M, ADAM_V)) {
                for (Piece piece : pieces(moments, moment)) {
                    if (!files.has(piece.file())) {
                        throw new CorruptCheckpointException("checkpoint " + checkpoint + ": " + MANIFEST + " does not list "
                                + piece.file());
                    }
                    long bytes = files.object(piece.file()).count("bytes");
                    if (bytes % Float.BYTES != 0 || bytes / Float.BYTES != piece.length()) {
                        throw new CorruptCheckpointException("checkpoint file " + manifestFile + ": " + piece.file() + " has "
                                + bytes + " bytes for a range of " + piece.length() + " " + moment + " values");
                    }
                }
            }
            requireTiling(checkpoint, moments, files.object(PARAMS).count("bytes") / Float.BYTES);
        }
        if (!sharded) {
            long params = files.object(PARAMS).count("bytes");
            for (String moment : List.of(ADAM_M, ADAM_V)) {
                if (files.object(moment).count("bytes") != params) {
                    throw new CorruptCheckpointException("checkpoint file " + manifestFile + ": " + moment + " has "
                            + files.object(moment).count("bytes") + " bytes where " + PARAMS + " has " + params);
                }
            }
        }
        for (Map.Entry<String, CheckpointJson> entry : files.entries()) {
            Path file = checkpoint.resolve(entry.getKey());
            long bytes = entry.getValue().count("bytes");
            String expected = entry.getValue().text("sha256");
            if (!Files.isRegularFile(file)) {
                throw new CorruptCheckpointException("checkpoint file " + file + " is missing");
            }
            long size = Files.size(file);
            if (size != bytes) {
                throw new CorruptCheckpointException("checkpoint file " + file + " has " + size + " bytes, the manifest says " + bytes);
            }
            String actual = sha256Of(file, entry.getKey().endsWith(".f32"));
            if (!actual.equals(expected)) {
                throw new CorruptCheckpointException("checkpoint file " + file + " fails its SHA-256 check (damaged: "
                        + actual.substring(0, 12) + "..., manifest " + expected.substring(0, Math.min(12, expected.length())) + "...)");
            }
        }
        return manifest;
    }

    /** The step a checkpoint's JSON file records must be the one its directory is named by. */
    public static void requireStepOfDirectory(Path checkpoint, CheckpointJson json) throws CorruptCheckpointException {
        long step = json.count("step");
        Matcher matcher = NAME.matcher(checkpoint.getFileName() == null ? "" : checkpoint.getFileName().toString());
        if (matcher.matches() && Long.parseLong(matcher.group(1)) != step) {
            throw new CorruptCheckpointException("checkpoint file " + json.file() + ": step is " + step + " in a directory named "
                    + checkpoint.getFileName());
        }
    }

    /** A manifest names files of its own directory only: no path leads out of the checkpoint. */
    private static void requireNameInside(Path manifestFile, String name) throws CorruptCheckpointException {
        if (name.isEmpty() || name.equals(".") || name.equals("..") || name.contains("/") || name.contains("\\")) {
            throw new CorruptCheckpointException("checkpoint file " + manifestFile + ": files lists " + name
                    + ", which is not a file name inside the checkpoint");
        }
    }

    /** Verifies, then reads the tensors into {@code params}, {@code m}, {@code v}. */
    public static Loaded load(Path checkpoint, Backend backend, Tensor params, Tensor m, Tensor v) throws IOException {
        verify(checkpoint);
        readTensor(checkpoint.resolve(PARAMS), backend, params);
        readMoments(checkpoint, ADAM_M, 0, backend, m);
        readMoments(checkpoint, ADAM_V, 0, backend, v);
        return new Loaded(checkpoint, stepOf(checkpoint), readState(checkpoint));
    }

    /** state.json, read strictly (its keys belong to the trainer). */
    public static CheckpointJson readState(Path checkpoint) throws IOException {
        return CheckpointJson.read(checkpoint.resolve(STATE));
    }

    public static void readTensor(Path file, Backend backend, Tensor tensor) throws IOException {
        long length = tensor.length();
        if (Files.size(file) != length * Float.BYTES) {
            throw new IllegalArgumentException("cannot resume: " + file + " holds " + Files.size(file) / Float.BYTES
                    + " values, the model has " + length);
        }
        readRange(file, 0, backend, tensor);
    }

    /**
     * Reads the range {@code [offset, offset + tensor.length())} of a moment's flat buffer
     * ({@link #ADAM_M} or {@link #ADAM_V}) from whichever files hold it: the whole file, or the
     * rank pieces the manifest names, however the saving run was split.
     */
    public static void readMoments(Path checkpoint, String moment, long offset, Backend backend, Tensor tensor)
            throws IOException {
        CheckpointJson manifest = CheckpointJson.read(checkpoint.resolve(MANIFEST));
        if (!manifest.has("moments")) {
            Path file = checkpoint.resolve(moment);
            long values = Files.size(file) / Float.BYTES;
            if (offset + tensor.length() > values) {
                throw new IllegalArgumentException("cannot resume: " + file + " holds " + values + " values, this rank needs "
                        + offset + ".." + (offset + tensor.length() - 1));
            }
            readRange(file, offset, backend, tensor);
            return;
        }
        long end = offset + tensor.length(), covered = 0;
        for (Piece piece : pieces(manifest.object("moments"), moment)) {
            long from = Math.max(offset, piece.offset());
            long to = Math.min(end, piece.offset() + piece.length());
            if (from < to) {
                readRange(checkpoint.resolve(piece.file()), from - piece.offset(), backend, tensor.slice(from - offset, to - from));
                covered += to - from;
            }
        }
        if (covered != tensor.length()) {
            throw new CorruptCheckpointException("checkpoint " + checkpoint + ": the " + moment + " shards hold " + covered
                    + " of the " + tensor.length() + " values this rank needs");
        }
    }

    /** Fills {@code tensor} from {@code file}, starting {@code fileOffset} values in. */
    private static void readRange(Path file, long fileOffset, Backend backend, Tensor tensor) throws IOException {
        long length = tensor.length();
        if (length == 0) {
            return;
        }
        float[] chunk = new float[(int) Math.min(CHUNK_FLOATS, length)];
        ByteBuffer bytes = ByteBuffer.allocate(chunk.length * Float.BYTES).order(ByteOrder.LITTLE_ENDIAN);
        try (FileChannel in = FileChannel.open(file, StandardOpenOption.READ)) {
            in.position(fileOffset * Float.BYTES);
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

    /**
     * The file's SHA-256; with {@code floats}, also refuses a value that is not finite. Training
     * never applies a non-finite update, so such a value is damage that passed the checksum (a
     * file rewritten with its manifest): resumed from, it would spread to every later checkpoint
     * while retention pruned the clean ones.
     */
    private static String sha256Of(Path file, boolean floats) throws IOException {
        MessageDigest digest = sha256();
        ByteBuffer buffer = ByteBuffer.allocateDirect(1 << 20).order(ByteOrder.LITTLE_ENDIAN);
        long values = 0;
        try (FileChannel in = FileChannel.open(file, StandardOpenOption.READ)) {
            while (in.read(buffer) >= 0) {
                buffer.flip();
                if (floats) {
                    int whole = buffer.remaining() / Float.BYTES * Float.BYTES;
                    for (int at = 0; at < whole; at += Float.BYTES) {
                        float value = buffer.getFloat(at);
                        if (!Float.isFinite(value)) {
                            throw new CorruptCheckpointException("checkpoint file " + file + " holds " + value + " at value "
                                    + (values + at / Float.BYTES) + " (damaged: training never writes a value that is not finite)");
                        }
                    }
                    values += whole / Float.BYTES;
                    digest.update(buffer.slice(0, whole));
                    buffer.position(whole);
                    buffer.compact();
                } else {
                    digest.update(buffer);
                    buffer.clear();
                }
            }
            if (floats) {
                buffer.flip();
                digest.update(buffer); // a tail of under 4 bytes: the size check has already refused it
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

    /** Best effort: another rank may be removing the same files, or the write's failure may repeat. */
    private static void removeQuietly(Path path) {
        try {
            deleteRecursively(path);
        } catch (IOException | UncheckedIOException ignored) {
            // the next start removes what is left (cleanLeftovers)
        }
    }

    static void deleteRecursively(Path path) throws IOException {
        if (!Files.exists(path, LinkOption.NOFOLLOW_LINKS)) {
            return;
        }
        List<Path> deepestFirst;
        try (Stream<Path> walk = Files.walk(path)) {
            deepestFirst = walk.sorted(Comparator.reverseOrder()).toList();
        }
        for (Path entry : deepestFirst) {
            DurableFiles.delete(entry);
        }
    }
}
