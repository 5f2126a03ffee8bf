package io.tinyllamaj.trainer.cli;

import io.tinyllamaj.files.DurableFiles;
import io.tinyllamaj.kernels.cpu.CpuBackend;
import io.tinyllamaj.model.LlamaConfig;
import io.tinyllamaj.model.LlamaModel;
import io.tinyllamaj.model.hf.HfCheckpoint;
import io.tinyllamaj.model.hf.LitGptCheckpoint;
import io.tinyllamaj.model.hf.SafeTensors;
import io.tinyllamaj.trainer.checkpoint.CheckpointStore;
import io.tinyllamaj.trainer.run.TrainState;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.Callable;

/**
 * {@code tinyllama export}: a training checkpoint's weights as a Hugging Face Llama checkpoint;
 * ours (a run or one of its checkpoints) or a lit-gpt {@code .pth} file as TinyLlama's pretrain
 * script writes it, whose shape comes from --model-config, --preset or its hparams. A Hugging
 * Face directory (pytorch_model.bin or safetensors) is rewritten as safetensors in --dtype.
 */
@Command(name = "export", mixinStandardHelpOptions = true,
        description = "Write a checkpoint's weights in the Hugging Face layout (config.json + safetensors).")
public final class ExportCommand implements Callable<Integer> {

    private static final long MAX_SHARD_BYTES = 5L << 30;

    @Option(names = "--checkpoint", required = true, paramLabel = "DIR",
            description = "A checkpoint (<run>/checkpoints/step-N), a run directory (its newest complete checkpoint) "
                    + "a lit-gpt training checkpoint file (iter-N-ckpt.pth), or a Hugging Face directory (pytorch_model.bin "
                    + "or safetensors) to rewrite as safetensors.")
    private Path checkpoint;

    @Option(names = "--model-config", paramLabel = "CONFIG_JSON",
            description = "For a lit-gpt file: the model shape as a Hugging Face config.json.")
    private Path modelConfig;

    @Option(names = "--preset", paramLabel = "NAME", description = "For a lit-gpt file: the model shape as one of our presets.")
    private String preset;

    @Option(names = "--out", required = true, paramLabel = "HF_DIR", description = "Output directory.")
    private Path out;

    @Option(names = "--dtype", defaultValue = "f32", description = "f32 or bf16 (default: ${DEFAULT-VALUE}).")
    private String dtype;

    @Override
    public Integer call() throws Exception {
        SafeTensors.DType type = switch (dtype.toLowerCase(Locale.ROOT)) {
            case "f32", "fp32", "float32" -> SafeTensors.DType.F32;
            case "bf16", "bfloat16" -> SafeTensors.DType.BF16;
            default -> throw new IllegalArgumentException("--dtype: expected f32 or bf16, got '" + dtype + "'");
        };
        requireOutsideTrainingCheckpoints(out);
        if (Files.isRegularFile(checkpoint)) {
            return exportLitGpt(type);
        }
        if (modelConfig != null || preset != null) {
            throw new IllegalArgumentException("--model-config and --preset apply to a lit-gpt .pth file; " + checkpoint
                    + " is a directory, whose checkpoint carries its shape");
        }
        if (HfCheckpoint.isCheckpoint(checkpoint)) {
            return convertHuggingFace(type);
        }
        Path source = checkpoint;
        if (Files.isDirectory(checkpoint.resolve("checkpoints"))) {
            source = new CheckpointStore(checkpoint).findResumable(w -> System.err.println("warning: " + w))
                    .orElseThrow(() -> new IllegalArgumentException(checkpoint + " has no complete checkpoint"));
        }
        CheckpointStore.verify(source);
        LlamaConfig config = TrainState.read(source).model();
        try (CpuBackend backend = new CpuBackend()) {
            LlamaModel model = new LlamaModel(backend, config);
            CheckpointStore.readTensor(source.resolve(CheckpointStore.PARAMS), backend, model.parameters());
            HfCheckpoint.save(model, out, type, MAX_SHARD_BYTES);
        }
        System.out.println("exported " + source + " (" + config.name() + ", " + type + ") to " + out);
        return 0;
    }

    /** A run's checkpoints/ folder belongs to its retention, which deletes old step directories whole, an export inside with them. */
    private static void requireOutsideTrainingCheckpoints(Path out) {
        for (Path p = out.toAbsolutePath().normalize(); p != null; p = p.getParent()) {
            if (p.getFileName() != null && p.getFileName().toString().equals("checkpoints")
                    && Files.isDirectory(p) && p.getParent() != null && Files.isRegularFile(p.getParent().resolve("config.yaml"))) {
                throw new IllegalArgumentException("--out " + out + " lies in the run's " + p + ", whose old checkpoints are "
                        + "deleted by retention (the export with them); choose a folder outside it");
            }
        }
    }

    /** Files of a Hugging Face directory that travel with its weights (the tokenizer and generation defaults). */
    private static final List<String> COMPANION_FILES = List.of("tokenizer.json", "tokenizer.model", "tokenizer_config.json",
            "special_tokens_map.json", "generation_config.json");

    /**
     * A Hugging Face directory (pytorch_model.bin, as TinyLlama's intermediate checkpoints come,
     * or safetensors) rewritten as safetensors in --dtype, with its tokenizer files.
     */
    private int convertHuggingFace(SafeTensors.DType type) throws IOException {
        if (Files.exists(out) && Files.isSameFile(out, checkpoint)) {
            throw new IllegalArgumentException("--out " + out + " is the checkpoint directory itself; choose another");
        }
        boolean torch = !Files.isRegularFile(checkpoint.resolve(HfCheckpoint.SINGLE))
                && !Files.isRegularFile(checkpoint.resolve(HfCheckpoint.INDEX));
        try (CpuBackend backend = new CpuBackend()) {
            LlamaModel model = HfCheckpoint.load(checkpoint, backend);
            HfCheckpoint.save(model, out, type, MAX_SHARD_BYTES);
            for (String name : COMPANION_FILES) {
                if (Files.isRegularFile(checkpoint.resolve(name))) {
                    DurableFiles.SYSTEM.replace(out.resolve(name), Files.readAllBytes(checkpoint.resolve(name)));
                }
            }
            System.out.println("converted " + checkpoint + " (" + (torch ? "pytorch_model.bin" : "safetensors") + ", "
                    + model.config().describe() + ") to " + out + " (safetensors, " + type + ")");
        }
        return 0;
    }

    private int exportLitGpt(SafeTensors.DType type) throws IOException {
        try (LitGptCheckpoint lit = LitGptCheckpoint.open(checkpoint); CpuBackend backend = new CpuBackend()) {
            LlamaConfig config = LitGptShape.resolve(lit, modelConfig, preset);
            lit.requireShape(config); // before the model is built: a wrong shape is named, not allocated
            LlamaModel model = new LlamaModel(backend, config);
            lit.loadWeights(model);
            HfCheckpoint.save(model, out, type, MAX_SHARD_BYTES);
            System.out.println("exported " + checkpoint + " (lit-gpt, " + config.describe() + ", " + type + ") to " + out);
        }
        return 0;
    }
}
