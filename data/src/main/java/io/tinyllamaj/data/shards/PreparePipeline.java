package io.tinyllamaj.data.shards;

import io.tinyllamaj.data.corpus.DocumentReader;
import io.tinyllamaj.data.corpus.InputFiles;
import io.tinyllamaj.data.corpus.ReadReport;
import io.tinyllamaj.files.DirectoryLock;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HexFormat;
import java.util.List;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;

/**
 * {@code prepare}: corpus files in, token shards and a manifest out.
 *
 * <p>One thread reads the input files in sorted order and cuts the documents into batches;
 * {@code workers} threads tokenize batches in parallel; the same reading thread takes the
 * results back in submission order and appends each document as its ids followed by EOS (no
 * BOS) to the current shard. A shard is closed at the first document boundary at or past
 * {@code shardTokens}. Because assignment follows input order only, the bytes written do not
 * depend on the worker count or on timing.
 *
 * <p>Each shard is written to a temporary name, flushed and renamed, then recorded in a
 * journal; the manifest comes last. A run that is killed leaves complete shards, perhaps a
 * {@code .tmp} file, and no manifest, so nothing half-written is ever readable as data; the
 * next run with the same options keeps the journaled shards and continues after them. The
 * output directory must be new, empty or this preparation's own ({@link PrepareDirectory}); a run
 * that reads no usable document fails and writes nothing.
 */
public final class PreparePipeline {
    private static final int BATCH_DOCUMENTS = 256;
    private static final int BATCH_CHARS = 1 << 18;

    private final PrepareOptions options;
    private final DocumentEncoder encoder;
    private final PrepareProgress progress;

    public PreparePipeline(PrepareOptions options, DocumentEncoder encoder, PrepareProgress progress) {
        this.options = options;
        this.encoder = encoder;
        this.progress = progress;
    }

    private DirectoryLock lock; // null until the output is first locked (see lockOutput)

    /** Tokenized batch: every document's ids, and the UTF-8 size of its text. */
    private record EncodedBatch(int[][] ids, long textBytes) {
    }

    public PrepareResult run() throws IOException {
        boolean finished = false;
        try {
            PrepareResult result = prepare();
            finished = true;
            return result;
        } finally {
            if (lock != null && !finished && !PrepareDirectory.isOwnRun(options.out())) {
                lock.closeAndRemoveIfCreated(); // a refused directory is left as it was found
            } else if (lock != null) {
                lock.close();
            }
        }
    }

    /**
     * One prepare per output directory: the lock is taken before anything in an existing output
     * is read for a decision, or, for a new one, when it is created, so a second process is
     * refused before it deletes or writes a file.
     */
    private void lockOutput() throws IOException {
        if (lock == null) {
            lock = DirectoryLock.acquire(options.out(), "prepare output",
                    "one prepare per output directory: wait for it to end, or choose another --out");
        }
    }

    private PrepareResult prepare() throws IOException {
        long start = System.nanoTime();
        List<Path> files = InputFiles.expand(options.inputs(), options.out());
        for (Path file : files) {
            options.source().requireOwnFormat(file);
        }
        Path out = options.out();
        if (Files.isDirectory(out)) {
            lockOutput();
        }
        String fingerprint = fingerprint(files);
        ReadReport report = new ReadReport(options.strict());
        ShardManifest finished = PrepareDirectory.finishedRun(out, fingerprint);
        if (finished != null) {
            return new PrepareResult(finished, report, finished.shards().size(), 0, 0);
        }
        PrepareJournal journal = PrepareDirectory.unfinishedRun(out, fingerprint);
        ShardBuilder shards = new ShardBuilder(out, journal);
        long totalBytes = 0;
        for (Path file : files) {
            totalBytes += Files.size(file);
        }
        try (ExecutorService pool = Executors.newFixedThreadPool(options.workers(), runnable -> {
            Thread thread = new Thread(runnable, "prepare-tokenizer");
            thread.setDaemon(true);
            return thread;
        })) {
            Batcher batcher = new Batcher(pool, shards, journal.documentsDone());
            long doneBytes = 0;
            for (Path file : files) {
                long before = doneBytes;
                long total = totalBytes;
                DocumentReader reader = options.source().reader();
                reader.read(file, batcher::add, report,
                        position -> progress.update(before + position, total, shards.textBytes, shards.tokensTotal()));
                doneBytes += Files.size(file);
            }
            batcher.finish();
        }
        shards.closeShard();
        long documents = shards.journal.shards().stream().mapToLong(ShardManifest.Shard::documents).sum();
        if (documents == 0) {
            throw new IOException(nothingUsable(files.size(), report));
        }
        ShardManifest manifest = new ShardManifest(ShardManifest.FORMAT, ShardManifest.VERSION,
                options.source().id(), encoder.checksum(), encoder.vocabSize(), encoder.eosId(),
                ShardManifest.FRAMING, documents, shards.tokensTotal(), shards.journal.shards());
        PrepareDirectory.finish(out, fingerprint, manifest);
        return new PrepareResult(manifest, report, journal.shards().size(), shards.textBytes,
                (System.nanoTime() - start) / 1e9);
    }

    /** "no usable documents in 2 input files (3 unusable records (3 malformed JSON)); first: a.jsonl:1: ..." */
    private static String nothingUsable(int fileCount, ReadReport report) {
        return "no usable documents in " + fileCount + " input file" + (fileCount == 1 ? "" : "s") + " ("
                + report.summary() + ")" + (report.problems().isEmpty() ? "" : "; first: " + report.problems().getFirst().line());
    }

    /** Collects documents into batches, keeps a bounded number in flight, and drains them in order. */
    private final class Batcher {
        private final ExecutorService pool;
        private final ShardBuilder shards;
        private final ArrayDeque<Future<EncodedBatch>> inFlight = new ArrayDeque<>();
        private long documentsToSkip;
        private List<String> batch = new ArrayList<>();
        private long batchChars;

        Batcher(ExecutorService pool, ShardBuilder shards, long documentsToSkip) {
            this.pool = pool;
            this.shards = shards;
            this.documentsToSkip = documentsToSkip;
        }

        void add(String text) {
            if (documentsToSkip > 0) {
                documentsToSkip--;
                return;
            }
            batch.add(text);
            batchChars += text.length();
            if (batch.size() >= BATCH_DOCUMENTS || batchChars >= BATCH_CHARS) {
                submit();
            }
            while (inFlight.size() > 2 * options.workers()) {
                drainOne();
            }
        }

        private void submit() {
            List<String> texts = batch;
            inFlight.add(pool.submit(() -> encode(texts)));
            batch = new ArrayList<>();
            batchChars = 0;
        }

        void finish() {
            if (!batch.isEmpty()) {
                submit();
            }
            while (!inFlight.isEmpty()) {
                drainOne();
            }
        }

        private void drainOne() {
            EncodedBatch encoded;
            try {
                encoded = inFlight.removeFirst().get();
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new IllegalStateException("prepare interrupted");
            } catch (ExecutionException e) {
                throw e.getCause() instanceof RuntimeException runtime ? runtime : new IllegalStateException(e.getCause());
            }
            shards.textBytes += encoded.textBytes();
            for (int[] ids : encoded.ids()) {
                shards.append(ids);
            }
        }
    }

    private EncodedBatch encode(List<String> texts) {
        int[][] ids = new int[texts.size()][];
        long bytes = 0;
        for (int i = 0; i < ids.length; i++) {
            ids[i] = encoder.encode(texts.get(i));
            bytes += texts.get(i).getBytes(StandardCharsets.UTF_8).length;
        }
        return new EncodedBatch(ids, bytes);
    }

    /** The shard being filled, and the journal of those already on disk. */
    private final class ShardBuilder {
        private final Path out;
        private PrepareJournal journal;
        private int[] tokens = new int[1 << 16];
        private int count;
        private long documents;
        private long tokensBefore;
        long textBytes;

        ShardBuilder(Path out, PrepareJournal journal) {
            this.out = out;
            this.journal = journal;
            this.tokensBefore = journal.shards().stream().mapToLong(ShardManifest.Shard::tokens).sum();
        }

        void append(int[] ids) {
            int vocab = encoder.vocabSize();
            for (int id : ids) {
                if (id < 0 || id >= vocab) {
                    throw new IllegalStateException("tokenizer produced id " + id + ", outside its vocabulary of " + vocab);
                }
            }
            if (count + ids.length + 1 > tokens.length) {
                tokens = Arrays.copyOf(tokens, Math.max(tokens.length * 2, count + ids.length + 1));
            }
            System.arraycopy(ids, 0, tokens, count, ids.length);
            count += ids.length;
            tokens[count++] = encoder.eosId();
            documents++;
            if (count >= options.shardTokens()) {
                closeShard();
            }
        }

        void closeShard() {
            if (count == 0) {
                return;
            }
            Path file = out.resolve(PrepareDirectory.shardName(journal.shards().size()));
            try {
                if (journal.shards().isEmpty()) {
                    lockOutput();
                    PrepareDirectory.claim(out, journal);
                }
                ShardManifest.Shard shard = ArrowTokenShard.write(file, tokens, count, documents, encoder.vocabSize());
                journal = journal.plus(shard);
                journal.write(out);
                progress.shardCommitted(shard);
                tokensBefore += count;
            } catch (IOException e) {
                throw new UncheckedIOException(e);
            }
            count = 0;
            documents = 0;
        }

        long tokensTotal() {
            return tokensBefore + count;
        }
    }

    /** Identifies one preparation: its source, input files and sizes, tokenizer and shard size. */
    private String fingerprint(List<Path> files) throws IOException {
        StringBuilder identity = new StringBuilder();
        identity.append("source=").append(options.source().id()).append('\n');
        identity.append("tokenizer=").append(encoder.checksum()).append('\n');
        identity.append("shard_tokens=").append(options.shardTokens()).append('\n');
        for (Path file : files) {
            identity.append(file.toAbsolutePath().normalize()).append(' ').append(Files.size(file)).append('\n');
        }
        try {
            byte[] digest = MessageDigest.getInstance("SHA-256").digest(identity.toString().getBytes(StandardCharsets.UTF_8));
            return HexFormat.of().formatHex(digest);
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException("the JDK has no SHA-256", e);
        }
    }
}
