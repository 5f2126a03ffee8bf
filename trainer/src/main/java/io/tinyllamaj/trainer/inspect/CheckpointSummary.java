package io.tinyllamaj.trainer.inspect;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import com.fasterxml.jackson.dataformat.yaml.YAMLMapper;
import io.tinyllamaj.trainer.checkpoint.CheckpointJson;
import io.tinyllamaj.trainer.checkpoint.CheckpointStore;
import io.tinyllamaj.trainer.config.ConfigLoader;
import io.tinyllamaj.trainer.run.LearningRateSchedule;
import io.tinyllamaj.trainer.run.MetricsLog;
import io.tinyllamaj.trainer.run.TrainState;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.OptionalDouble;
import java.util.OptionalLong;

/**
 * What {@code tinyllama inspect} reports about one checkpoint, every file verified against the
 * manifest's SHA-256 first.
 *
 * @param lr       the LR the checkpoint's last step ran with (metrics.jsonl's {@code lr} of that step)
 * @param nextLr   the LR a resumed run's first step takes
 * @param lastLoss the loss of the newest step record in the run's metrics.jsonl at or before the
 *                 checkpoint's step; empty when the checkpoint sits outside a run directory
 */
public record CheckpointSummary(Path checkpoint, long step, long maxSteps, long updates, long skippedSteps, long tokensSeen,
                                Map<String, Long> tokensPerSource, OptionalLong lastLossStep, OptionalDouble lastLoss,
                                double lr, double nextLr, String configHash, List<VerifiedFile> files) {

    public record VerifiedFile(String name, long bytes, String sha256) {
    }

    private static final ObjectMapper JSON = new ObjectMapper();

    /** A run directory (the checkpoint {@code latest} names, else the newest complete one) or a checkpoint directory. */
    public static CheckpointSummary of(Path target) throws IOException {
        Path checkpoint = checkpointOf(target);
        CheckpointJson manifest = CheckpointStore.verify(checkpoint);
        List<VerifiedFile> files = new ArrayList<>();
        for (Map.Entry<String, CheckpointJson> entry : manifest.object("files").entries()) {
            files.add(new VerifiedFile(entry.getKey(), entry.getValue().count("bytes"), entry.getValue().text("sha256")));
        }
        TrainState state = TrainState.read(checkpoint);
        String yaml = new YAMLMapper().writeValueAsString(state.config());
        ConfigLoader.Loaded loaded = ConfigLoader.parse(checkpoint.resolve(CheckpointStore.STATE) + " (config)", yaml, List.of());
        LearningRateSchedule schedule = LearningRateSchedule.of(loaded.config().train(), loaded.shape());
        long step = state.step();
        OptionalLong lossStep = OptionalLong.empty();
        OptionalDouble loss = OptionalDouble.empty();
        Path checkpoints = checkpoint.toAbsolutePath().getParent();
        Path metrics = checkpoints == null || checkpoints.getParent() == null ? null : checkpoints.getParent().resolve(MetricsLog.FILE);
        if (metrics != null && Files.isRegularFile(metrics)) {
            try {
                for (JsonNode record : MetricsLog.read(metrics)) {
                    if (record.path("step").asLong() <= step && record.path("loss").isNumber()) {
                        lossStep = OptionalLong.of(record.path("step").asLong());
                        loss = OptionalDouble.of(record.path("loss").asDouble());
                    }
                }
            } catch (IOException damaged) {
                // the loss is a convenience here; the checkpoint's own verification is what inspect answers for
                lossStep = OptionalLong.empty();
                loss = OptionalDouble.empty();
            }
        }
        return new CheckpointSummary(checkpoint, step, loaded.shape().maxSteps(), state.updates(), state.skippedSteps(),
                state.tokensSeen(), state.tokensPerSource(), lossStep, loss, step == 0 ? schedule.at(0) : schedule.at(step - 1),
                schedule.at(step), state.configHash(), files);
    }

    private static Path checkpointOf(Path target) throws IOException {
        if (!Files.isDirectory(target)) {
            throw new NoSuchFileException(target.toString(), null, "no such run or checkpoint directory");
        }
        boolean stepName = target.toAbsolutePath().getFileName() != null
                && CheckpointStore.isStepName(target.toAbsolutePath().getFileName().toString());
        if (Files.exists(target.resolve(CheckpointStore.MANIFEST)) || stepName) {
            return target;
        }
        if (!Files.isDirectory(target.resolve("checkpoints"))) {
            throw new IllegalArgumentException(target + " is neither a run directory (it has no checkpoints/) nor a checkpoint "
                    + "(a directory named like step-00001000)");
        }
        CheckpointStore store = new CheckpointStore(target);
        if (store.latestPointer().filter(Files::isDirectory).isPresent()) {
            return store.latestPointer().get();
        }
        List<Path> complete = store.completeCheckpoints();
        if (complete.isEmpty()) {
            throw new IllegalArgumentException(target + " holds no complete checkpoint under " + store.directory());
        }
        return complete.getLast();
    }

    /** The {@code --json} form: one object. */
    public ObjectNode toJson() {
        ObjectNode out = JSON.createObjectNode();
        out.put("checkpoint", checkpoint.toString());
        out.put("step", step);
        out.put("max_steps", maxSteps);
        out.put("updates", updates);
        out.put("skipped_steps", skippedSteps);
        out.put("tokens_seen", tokensSeen);
        ObjectNode sources = out.putObject("tokens_per_source");
        tokensPerSource.forEach(sources::put);
        if (lastLoss.isPresent()) {
            out.put("last_loss", lastLoss.getAsDouble());
            out.put("last_loss_step", lastLossStep.getAsLong());
        } else {
            out.putNull("last_loss");
            out.putNull("last_loss_step");
        }
        out.put("lr", lr);
        out.put("next_lr", nextLr);
        out.put("config_hash", configHash);
        var list = out.putArray("files");
        for (VerifiedFile file : files) {
            list.addObject().put("name", file.name()).put("bytes", file.bytes()).put("sha256", file.sha256()).put("verified", true);
        }
        return out;
    }

    /** The plain form: a few lines for people. */
    public List<String> lines() {
        List<String> lines = new ArrayList<>();
        lines.add("checkpoint " + checkpoint);
        lines.add(String.format(Locale.ROOT, "step %d of %d (%d updates, %d skipped)", step, maxSteps, updates, skippedSteps));
        StringBuilder sources = new StringBuilder();
        tokensPerSource.forEach((name, count) -> sources.append(sources.isEmpty() ? "" : ", ")
                .append(String.format(Locale.ROOT, "%s %,d", name, count)));
        lines.add(String.format(Locale.ROOT, "tokens seen %,d (%s)", tokensSeen, sources));
        lines.add(lastLoss.isPresent()
                ? String.format(Locale.ROOT, "last loss %.6f (step %d of metrics.jsonl)", lastLoss.getAsDouble(), lastLossStep.getAsLong())
                : "last loss unknown (no readable metrics.jsonl beside the checkpoints)");
        lines.add(String.format(Locale.ROOT, "lr %.6e at step %d; %.6e for the next step", lr, step, nextLr));
        lines.add("config hash " + configHash);
        long bytes = files.stream().mapToLong(VerifiedFile::bytes).sum();
        lines.add(String.format(Locale.ROOT, "files: %d verified against their SHA-256 (%,d bytes): %s", files.size(), bytes,
                String.join(", ", files.stream().map(VerifiedFile::name).toList())));
        return lines;
    }
}
