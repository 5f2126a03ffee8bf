package io.tinyllamaj.trainer.run;

import io.tinyllamaj.files.DirectoryLock;
import io.tinyllamaj.files.DurableFiles;
import io.tinyllamaj.kernels.Backend;
import io.tinyllamaj.kernels.mpi.Launch;
import io.tinyllamaj.model.LlamaModel;
import io.tinyllamaj.trainer.Backends;
import io.tinyllamaj.trainer.checkpoint.CheckpointStore;
import io.tinyllamaj.trainer.checkpoint.CorruptCheckpointException;
import io.tinyllamaj.trainer.config.ConfigLoader;
import io.tinyllamaj.trainer.config.RunShape;
import io.tinyllamaj.trainer.config.TrainingConfig;
import io.tinyllamaj.trainer.data.TrainingData;
import io.tinyllamaj.trainer.distributed.Distributed;
import io.tinyllamaj.trainer.distributed.Strategy;

import java.io.IOException;
import java.io.OutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Locale;
import java.util.Optional;

/**
 * {@code tinyllama pretrain} without the command line: picks the config, the run directory
 * and the starting point (fresh, a Hugging Face checkpoint, or a checkpoint of this run),
 * then hands over to {@link Trainer}. Tests call it directly.
 *
 * @param config    a recipe file; null: the run directory's config.yaml when resuming, else the built-in demo
 * @param overrides {@code key.path=value} settings applied on top
 * @param out       the run directory; null: the one holding {@code resume}, else runs/demo
 * @param resume    null, "auto", a checkpoint directory or a run directory
 * @param initFrom  a Hugging Face checkpoint directory or a lit-gpt .pth file to start from, or null
 */
public record PretrainRun(Path config, List<String> overrides, Path out, String resume, Path initFrom) {

    public static final Path DEFAULT_OUT = Path.of("runs", "demo");
    static final String CONFIG = "config.yaml";

    public PretrainRun {
        overrides = List.copyOf(overrides);
    }

    /**
     * Runs the whole command on this rank. Under mpirun every rank calls it: all of them open
     * the strategy and the data and train together; rank 0 alone prints, writes config.yaml,
     * metrics and plots, and chooses the checkpoint to resume from. An error on any rank ends
     * every rank at once (MPI_Abort) after one line naming it.
     *
     * <p>Rank 0 first takes the run directory's lock ({@link DirectoryLock}), so a second process on
     * the same directory is refused before it touches anything. Every other check (the
     * checkpoint and its compatibility, the data) passes before the run directory changes, so a
     * refused run leaves it exactly as it was.
     */
    public Trainer.Outcome execute(StopSignal stop, Trainer.Hooks hooks, PrintStream log) throws IOException {
        return execute(stop, hooks, log, DurableFiles.SYSTEM);
    }

    /** {@link #execute(StopSignal, Trainer.Hooks, PrintStream)} writing the run directory through {@code disk}. */
    public Trainer.Outcome execute(StopSignal stop, Trainer.Hooks hooks, PrintStream log, DurableFiles disk) throws IOException {
        if (resume != null && initFrom != null) {
            throw new IllegalArgumentException("--resume and --init-from exclude each other: a resumed run has its weights already");
        }
        Launch launch = Launch.detect();
        if (launch.rank() == 0) {
            log.println(launch.describe()); // the run's first line: a wrong launch shows before anything else
        }
        Path runDirectory = runDirectory();
        if (Files.exists(runDirectory) && !Files.isDirectory(runDirectory)) {
            throw new IllegalArgumentException("run directory " + runDirectory
                    + " is an existing file, not a directory (choose another --out)");
        }
        ConfigLoader.Loaded loaded = loadConfig(runDirectory);
        TrainingConfig config = loaded.config();
        TrainingConfig.Distributed dist = config.distributed();
        Backend backend = Backends.create(config.train(), gpuOf(launch, config.train().device()));
        Strategy strategy;
        try {
            strategy = Distributed.open(dist.strategy(), dist.worldSize(), dist.ranksPerNode(), dist.reshards(), dist.reduceDtype(),
                    dist.transportOn(config.train().device()),
                    Duration.ofSeconds(dist.collectiveTimeoutS()), backend, System.err);
        } catch (RuntimeException e) {
            backend.close();
            throw e;
        }
        try (strategy; backend) {
            boolean lead = strategy.rank() == 0;
            // rank 0 owns the run directory for the run's whole life; null: the other ranks hold no lock
            try (DirectoryLock owner = lead ? DirectoryLock.acquire(runDirectory, "run directory",
                    "one live pretrain per run directory: wait for it to end or stop it, or choose another --out") : null) {
                return train(loaded, runDirectory, strategy, backend, stop, hooks,
                        lead ? log : new PrintStream(OutputStream.nullOutputStream()), disk);
            } catch (Throwable t) {
                if (strategy.worldSize() > 1) {
                    strategy.abort(t); // before close(): MPI_Finalize would wait for ranks that are not coming
                }
                throw t;
            }
        }
    }

    private Trainer.Outcome train(ConfigLoader.Loaded loaded, Path runDirectory, Strategy strategy, Backend backend,
                                  StopSignal stop, Trainer.Hooks hooks, PrintStream log, DurableFiles disk) throws IOException {
        TrainingConfig config = loaded.config();
        RunShape shape = loaded.shape();
        boolean lead = strategy.rank() == 0;
        CheckpointStore checkpoints = new CheckpointStore(runDirectory, disk);
        if (lead) {
            checkpoints.requireWritable(); // else the first checkpoint write fails, after its steps have run
        }
        Optional<Path> checkpoint = agreeOnCheckpoint(runDirectory, checkpoints, strategy, log);
        Optional<TrainState> saved = checkpoint.isPresent() ? Optional.of(TrainState.read(checkpoint.get())) : Optional.empty();
        if (saved.isPresent()) {
            saved.get().requireCompatible(checkpoint.get(), config, shape);
        }

        String yaml = ConfigLoader.toYaml(config);
        log.println("effective config (config hash " + Trainer.configHash(config, shape) + "):");
        log.print(yaml.indent(2));
        log.printf(Locale.ROOT, "model %s: %,d parameters; %d steps of %,d tokens (%d x %d micro-batch x %d accumulation x %d ranks, "
                        + "%s); %,d tokens in all%n", shape.model().name(), shape.model().parameterCount(), shape.maxSteps(),
                shape.tokensPerStep(), shape.microBatch(), shape.seqLen(), shape.accumulation(), shape.worldSize(),
                strategy.name(), shape.maxSteps() * shape.tokensPerStep());
        if (config.train().warmupSteps() >= shape.maxSteps()) {
            log.printf(Locale.ROOT, "warning: train.warmup_steps %d is not below the run's %d steps: the LR never leaves warm-up "
                    + "(it never reaches train.lr, nor decays to train.min_lr)%n", config.train().warmupSteps(), shape.maxSteps());
        }
        if (saved.isPresent() && saved.get().step() >= shape.maxSteps()) {
            log.printf(Locale.ROOT, "warning: the checkpoint is at step %d, at or past the run's %d steps: nothing to train "
                    + "(raise train.max_steps to continue)%n", saved.get().step(), shape.maxSteps());
        }
        if (saved.isPresent() && config.train().startStep() != 0) {
            log.printf(Locale.ROOT, "warning: train.start_step %d is ignored: a resumed run continues at its checkpoint's step %d%n",
                    config.train().startStep(), saved.get().step());
        }
        LlamaModel.requireFits(backend, shape.model()); // an absurd shape is refused before data is prepared
        TrainingTasks tasks = TrainingTasks.open(config, shape.model(), runDirectory, lead); // a bad task row too
        if (lead) {
            removeLeftovers(runDirectory, checkpoints); // first: on a full disk their space may be needed
            TrainingData.prepareMissing(config, log);
        }
        strategy.world().barrier();
        try (TrainingData data = TrainingData.open(config, shape, strategy.rank(), log)) {
            LlamaModel model = new LlamaModel(backend, shape.model());
            try (Progress progress = Progress.create(config.train().startStep(), shape.maxSteps(), log)) {
                Trainer trainer = new Trainer(config, shape, model, data.sampler(), checkpoints, progress, stop, hooks, strategy, tasks);
                start(trainer, checkpoint, saved, progress);
                if (lead) {
                    disk.replace(runDirectory.resolve(CONFIG), yaml.getBytes(StandardCharsets.UTF_8));
                }
                long started = System.nanoTime();
                Trainer.Outcome outcome;
                try (MetricsLog metrics = lead ? MetricsLog.open(runDirectory, trainer.step(), saved.isPresent(), disk,
                        config.logging().tensorboard() ? TensorBoardLog.open(runDirectory, disk, log, saved.isPresent() ? trainer.step() : 0)
                        : TensorBoardLog.none())
                        : MetricsLog.discard()) {
                    outcome = trainer.run(metrics);
                }
                double seconds = (System.nanoTime() - started) / 1e9;
                progress.close();
                log.printf(Locale.ROOT, "%s at step %d/%d after %.1f s (%,d tokens seen, %d steps skipped); run directory %s%n",
                        outcome == Trainer.Outcome.FINISHED ? "finished" : "stopped", trainer.step(), shape.maxSteps(),
                        seconds, trainer.tokensSeen(), trainer.skippedSteps(), runDirectory);
                if (lead) {
                    writePlots(runDirectory, log);
                }
                return outcome;
            }
        }
    }

    /** Loads the starting point into the model: a checkpoint of this run, Hugging Face weights, or a new model. */
    private void start(Trainer trainer, Optional<Path> checkpoint, Optional<TrainState> saved, Progress progress) throws IOException {
        if (saved.isPresent()) {
            trainer.resume(checkpoint.orElseThrow(), saved.get());
            progress.message("resumed from " + checkpoint.orElseThrow() + " at step " + trainer.step());
        } else if (initFrom != null && java.nio.file.Files.isRegularFile(initFrom)) {
            progress.message("from lit-gpt checkpoint " + initFrom + ": " + String.join("; ", trainer.initFromLitGpt(initFrom)));
        } else if (initFrom != null) {
            trainer.loadHuggingFace(initFrom);
            progress.message("weights from " + initFrom + "; fresh optimizer state at step " + trainer.step());
        } else {
            trainer.initializeWeights();
        }
    }

    /** What a killed process leaves: its checkpoint write in progress and the temporaries of the small files. */
    private static void removeLeftovers(Path runDirectory, CheckpointStore checkpoints) throws IOException {
        checkpoints.cleanLeftovers();
        for (String file : List.of(CONFIG, MetricsLog.FILE)) {
            DurableFiles.delete(DurableFiles.tempFor(runDirectory.resolve(file)));
        }
    }

    /** Each rank drives the GPU of its launcher's local rank, or the only one its launcher left visible. */
    private static int gpuOf(Launch launch, String device) {
        String visible = System.getenv("CUDA_VISIBLE_DEVICES");
        if (visible != null && !visible.isBlank() && !visible.contains(",")) {
            return 0;
        }
        if (launch.localRank() < 0 && device.equals("cuda")) {
            throw new IllegalArgumentException(launch.launcher().label() + " names no local rank to choose a GPU by: "
                    + "leave each rank one GPU in CUDA_VISIBLE_DEVICES");
        }
        return Math.max(0, launch.localRank());
    }

    /**
     * Rank 0 chooses (and verifies) the checkpoint; the others take the same step's directory,
     * so the files are hashed once and every rank resumes from the same place.
     */
    private Optional<Path> agreeOnCheckpoint(Path runDirectory, CheckpointStore checkpoints, Strategy strategy, PrintStream log)
            throws IOException {
        Optional<Path> chosen = strategy.rank() == 0 ? chooseCheckpoint(runDirectory, checkpoints, log) : Optional.empty();
        if (strategy.worldSize() == 1) {
            return chosen;
        }
        double agreed = strategy.world().allReduceMax(chosen.map(p -> (double) CheckpointStore.stepOf(p)).orElse(-1.0));
        if (strategy.rank() == 0) {
            return chosen;
        }
        if (agreed < 0) {
            return Optional.empty();
        }
        Path base = resume.equals("auto") || Files.isDirectory(Path.of(resume).resolve("checkpoints"))
                ? new CheckpointStore(resume.equals("auto") ? runDirectory : Path.of(resume)).directory()
                : Path.of(resume).toAbsolutePath().getParent();
        return Optional.of(base.resolve(CheckpointStore.name((long) agreed)));
    }

    private Path runDirectory() {
        if (out != null) {
            return out;
        }
        if (resume != null && !resume.equals("auto")) {
            Path given = Path.of(resume);
            if (Files.isDirectory(given.resolve("checkpoints"))) {
                return given;
            }
            Path parent = given.toAbsolutePath().getParent();
            if (parent != null && parent.getFileName() != null && parent.getFileName().toString().equals("checkpoints")
                    && parent.getParent() != null) {
                return parent.getParent();
            }
        }
        return DEFAULT_OUT;
    }

    private ConfigLoader.Loaded loadConfig(Path runDirectory) {
        if (resume != null && !resume.equals("auto") && !Files.isDirectory(Path.of(resume))) {
            throw new IllegalArgumentException("--resume " + resume + ": no such checkpoint or run directory");
        }
        if (config != null) {
            return ConfigLoader.load(config, overrides);
        }
        Path saved = runDirectory.resolve(CONFIG);
        if (resume != null && Files.isRegularFile(saved)) {
            return ConfigLoader.load(saved, overrides);
        }
        if (resume != null && hasCheckpoints(runDirectory)) {
            // the built-in demo in its place would resume the run under another recipe, its fingerprint blind to lr and more
            throw new IllegalArgumentException("cannot resume " + runDirectory + ": its " + CONFIG + " is missing or not a regular "
                    + "file; pass the run's recipe with --config FILE");
        }
        return ConfigLoader.parse("demo-cpu.yaml (built in)", ConfigLoader.demoYaml(), overrides);
    }

    /** Whether the run to resume has a checkpoint: --resume DIR names one, --resume auto may find none (a first launch). */
    private boolean hasCheckpoints(Path runDirectory) {
        try {
            return !resume.equals("auto") || !new CheckpointStore(runDirectory).completeCheckpoints().isEmpty();
        } catch (IOException e) {
            return true;
        }
    }

    private Optional<Path> chooseCheckpoint(Path runDirectory, CheckpointStore checkpoints, PrintStream log) throws IOException {
        if (resume == null) {
            List<Path> existing = checkpoints.completeCheckpoints();
            if (!existing.isEmpty()) {
                throw new IllegalArgumentException(runDirectory + " already holds checkpoints (newest "
                        + existing.getLast().getFileName() + "): pass --resume auto to continue it, or choose another --out");
            }
            return Optional.empty();
        }
        Path given = resume.equals("auto") ? runDirectory : Path.of(resume);
        if (resume.equals("auto") || Files.isDirectory(given.resolve("checkpoints"))) {
            Optional<Path> found = new CheckpointStore(given).findResumable(warning -> log.println("warning: " + warning));
            if (found.isEmpty()) {
                log.println("no checkpoint under " + given.resolve("checkpoints") + ": starting a new run");
            }
            return found;
        }
        if (given.toAbsolutePath().getFileName() == null || !CheckpointStore.isStepName(given.toAbsolutePath().getFileName().toString())) {
            throw new IllegalArgumentException("--resume " + resume + " is neither a run directory (it has no checkpoints/) nor a "
                    + "checkpoint (a directory named like step-00001000)");
        }
        try {
            CheckpointStore.verify(given);
        } catch (CorruptCheckpointException e) {
            Path parent = given.toAbsolutePath().getParent();
            Optional<Path> previous = parent == null || parent.getParent() == null ? Optional.empty()
                    : new CheckpointStore(parent.getParent()).previousGood(given.toAbsolutePath());
            throw new CorruptCheckpointException(e.getMessage() + previous.map(p -> "; the previous complete checkpoint is "
                    + p + " (pass --resume " + p + ", or --resume auto)").orElse("; no earlier complete checkpoint was found"));
        }
        return Optional.of(given);
    }

    /** Charts are a convenience: a runtime without java.desktop (a jlinked GPU bundle) just skips them. */
    private static void writePlots(Path runDirectory, PrintStream log) {
        try {
            log.println("plots: " + io.tinyllamaj.trainer.plot.Charts.write(runDirectory).getFirst().getParent());
        } catch (IOException | RuntimeException | LinkageError e) {
            log.println("plots skipped (" + io.tinyllamaj.trainer.FailureMessages.describe(e) + "); run 'tinyllama plot " + runDirectory + "' elsewhere");
        }
    }
}
