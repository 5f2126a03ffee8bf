package io.tinyllamaj.trainer.cli;

import io.tinyllamaj.trainer.run.PretrainRun;
import io.tinyllamaj.trainer.run.StopSignal;
import io.tinyllamaj.trainer.run.Trainer;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.Callable;

/** {@code tinyllama pretrain}: docs/training.md describes the config, the run directory and resuming. */
@Command(name = "pretrain", mixinStandardHelpOptions = true,
        description = {"Pretrain a Llama model from a YAML recipe (default: the built-in CPU demo, configs/demo-cpu.yaml).",
                "SIGTERM or Ctrl-C saves a checkpoint at the next step and exits 0; --resume auto continues."})
public final class PretrainCommand implements Callable<Integer> {

    @Option(names = "--config", paramLabel = "FILE", description = "YAML recipe, e.g. configs/tinyllama-1.1b-3t.yaml.")
    private Path config;

    @Option(names = "--set", paramLabel = "KEY=VALUE", description = "Override one config value, e.g. --set train.lr=3e-4 (repeatable).")
    private List<String> overrides = new ArrayList<>();

    @Option(names = "--out", paramLabel = "DIR", description = "Run directory (default: runs/demo, or the run of --resume DIR).")
    private Path out;

    @Option(names = "--resume", paramLabel = "auto|DIR",
            description = "Continue: 'auto' takes the newest complete checkpoint of --out; DIR is a checkpoint or a run directory.")
    private String resume;

    @Option(names = "--init-from", paramLabel = "HF_DIR|FILE.pth",
            description = "Start from a Hugging Face checkpoint with fresh optimizer state (use --set train.start_step=N to continue the "
                    + "schedule), or continue a lit-gpt training checkpoint (TinyLlama's iter-N-ckpt.pth): weights, AdamW moments "
                    + "and step.")
    private Path initFrom;

    @Override
    public Integer call() throws Exception {
        new PretrainRun(config, overrides, out, resume, initFrom).execute(StopSignal.install(), Trainer.Hooks.NONE, System.out);
        return 0;
    }
}
