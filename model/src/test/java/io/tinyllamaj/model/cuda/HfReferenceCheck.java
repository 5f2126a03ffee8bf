package io.tinyllamaj.model.cuda;

import io.tinyllamaj.kernels.cpu.CpuBackend;
import io.tinyllamaj.kernels.cuda.CudaBackend;
import io.tinyllamaj.kernels.cuda.CudaOpCheck;
import io.tinyllamaj.model.LlamaModel;
import io.tinyllamaj.model.hf.HfCheckpoint;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/**
 * Our model against Hugging Face transformers' LlamaForCausalLM on a random checkpoint that
 * the python side of scripts/gpu-check wrote: {@code DIR/checkpoint} (config.json and
 * safetensors), {@code DIR/tokens.i32} ([b, t] little-endian int32), {@code DIR/shape.txt}
 * ("b t"), {@code DIR/logits-fp32.f32} (transformers in fp32) and {@code DIR/logits-bf16.f32}
 * (transformers under bf16 autocast, the yardstick for what bf16 costs), and
 * {@code DIR/loss.txt} (fp32 loss, bf16 loss). The CPU backend must match fp32 transformers to
 * 1e-4; the CUDA backend must be no further from fp32 transformers than twice PyTorch's own
 * bf16 autocast is (plus 1e-3). Usage: {@code HfReferenceCheck DIR OUT_DIR}; writes
 * OUT_DIR/gpu-hf.txt.
 */
public final class HfReferenceCheck {

    public static void main(String[] args) throws IOException {
        Path dir = Path.of(args[0]), out = Path.of(args[1]);
        String[] shape = Files.readString(dir.resolve("shape.txt")).trim().split("\\s+");
        int b = Integer.parseInt(shape[0]), t = Integer.parseInt(shape[1]), n = b * t;
        int[] tokens = new int[n];
        ByteBuffer.wrap(Files.readAllBytes(dir.resolve("tokens.i32"))).order(ByteOrder.LITTLE_ENDIAN).asIntBuffer().get(tokens);
        int[] targets = new int[n];
        for (int i = 0; i < n; i++) {
            targets[i] = (i + 1) % t == 0 ? -1 : tokens[i + 1];
        }
        float[] refFp32 = floats(dir.resolve("logits-fp32.f32")), refBf16 = floats(dir.resolve("logits-bf16.f32"));
        String[] refLoss = Files.readString(dir.resolve("loss.txt")).trim().split("\\s+");
        List<String> lines = new ArrayList<>();
        int failures = 0;
        try (CpuBackend cpu = new CpuBackend(); CudaBackend gpu = CudaBackend.create()) {
            LlamaModel c = HfCheckpoint.load(dir.resolve("checkpoint"), cpu);
            LlamaModel g = new LlamaModel(gpu, c.config());
            float[] weights = cpu.download(c.parameters());
            gpu.upload(g.parameters(), weights, 0, weights.length);
            weights = null;
            lines.add(String.format("transformers LlamaForCausalLM vs ours: layers=%d dim=%d heads=%d/%d vocab=%d, b=%d t=%d; device %s",
                    c.config().layers(), c.config().dim(), c.config().heads(), c.config().kvHeads(), c.config().vocabSize(), b, t,
                    gpu.deviceDescription()));
            float[] logitsCpu = cpu.download(c.logits(tokens, b, t));
            float[] logitsGpu = gpu.download(g.logits(tokens, b, t));
            double lossCpu = meanLoss(c.losses(tokens, targets, b, t), n - b);
            double lossGpu = meanLoss(g.losses(tokens, targets, b, t), n - b);
            double torchBf16 = CudaOpCheck.relativeError(refBf16, refFp32);
            double cpuErr = CudaOpCheck.relativeError(logitsCpu, refFp32);
            double gpuErr = CudaOpCheck.relativeError(logitsGpu, refFp32);
            double gpuBound = 2 * torchBf16 + 1e-3;
            lines.add(String.format("  %-52s %11s %8s", "logits, ||x - transformers fp32|| / ||ref||", "rel err", "bound"));
            lines.add(String.format("  %-52s %11.3e %8s", "transformers bf16 autocast (yardstick)", torchBf16, "-"));
            lines.add(String.format("  %-52s %11.3e %8.0e %s", "ours, CPU backend (fp32)", cpuErr, 1e-4, cpuErr <= 1e-4 ? "ok" : "FAIL"));
            lines.add(String.format("  %-52s %11.3e %8.1e %s", "ours, CUDA backend (bf16-mixed)", gpuErr, gpuBound, gpuErr <= gpuBound ? "ok" : "FAIL"));
            lines.add(String.format("  loss: transformers fp32 %s, bf16 %s; ours cpu %.6f, cuda %.6f", refLoss[0], refLoss[1], lossCpu, lossGpu));
            double lossRef = Double.parseDouble(refLoss[0]);
            double cudaLossErr = Math.abs(lossGpu - lossRef) / lossRef, cpuLossErr = Math.abs(lossCpu - lossRef) / lossRef;
            lines.add(String.format("  %-52s %11.3e %8.0e %s", "loss, ours CPU vs transformers fp32", cpuLossErr, 1e-5, cpuLossErr <= 1e-5 ? "ok" : "FAIL"));
            lines.add(String.format("  %-52s %11.3e %8.0e %s", "loss, ours CUDA vs transformers fp32", cudaLossErr, 1e-2, cudaLossErr <= 1e-2 ? "ok" : "FAIL"));
            failures += (cpuErr <= 1e-4 ? 0 : 1) + (gpuErr <= gpuBound ? 0 : 1) + (cpuLossErr <= 1e-5 ? 0 : 1) + (cudaLossErr <= 1e-2 ? 0 : 1);
        }
        lines.add(failures + " failed");
        String text = String.join("\n", lines) + "\n";
        System.out.print(text);
        Files.createDirectories(out);
        Files.writeString(out.resolve("gpu-hf.txt"), text);
        if (failures > 0) {
            System.exit(1);
        }
    }

    private static double meanLoss(float[] losses, int count) {
        double sum = 0;
        for (float l : losses) {
            sum += l;
        }
        return sum / count;
    }

    private static float[] floats(Path file) throws IOException {
        ByteBuffer bytes = ByteBuffer.wrap(Files.readAllBytes(file)).order(ByteOrder.LITTLE_ENDIAN);
        float[] values = new float[bytes.remaining() / 4];
        bytes.asFloatBuffer().get(values);
        return values;
    }
}
