package io.tinyllamaj.model.hf;

import io.tinyllamaj.model.LlamaConfig;
import io.tinyllamaj.model.ParameterLayout;

import java.util.ArrayList;
import java.util.List;

/**
 * How our fused parameters split into Hugging Face LlamaForCausalLM tensors. Both layouts use
 * the rotate-half RoPE, so q and k rows need no permutation: q, k, v stack row-wise into our
 * qkv matrix, gate and up into gate_up.
 */
final class HfTensorMap {

    /** Rows [rowOffset, rowOffset + rows) of our parameter {@code ours} are HF tensor {@code hfName}. */
    record Piece(String ours, int rowOffset, String hfName, int rows, int cols, boolean vector) {
        long[] hfShape() {
            return vector ? new long[]{cols} : new long[]{rows, cols};
        }
    }

    private HfTensorMap() {
    }

    static List<Piece> pieces(LlamaConfig c) {
        List<Piece> pieces = new ArrayList<>();
        int q = c.heads() * c.headSize(), kv = c.kvHeads() * c.headSize();
        pieces.add(new Piece("embed", 0, "model.embed_tokens.weight", c.vocabSize(), c.dim(), false));
        for (int l = 0; l < c.layers(); l++) {
            String hf = "model.layers." + l + ".";
            pieces.add(new Piece(ParameterLayout.block(l, "attn_norm"), 0, hf + "input_layernorm.weight", 1, c.dim(), true));
            pieces.add(new Piece(ParameterLayout.block(l, "qkv"), 0, hf + "self_attn.q_proj.weight", q, c.dim(), false));
            pieces.add(new Piece(ParameterLayout.block(l, "qkv"), q, hf + "self_attn.k_proj.weight", kv, c.dim(), false));
            pieces.add(new Piece(ParameterLayout.block(l, "qkv"), q + kv, hf + "self_attn.v_proj.weight", kv, c.dim(), false));
            pieces.add(new Piece(ParameterLayout.block(l, "attn_out"), 0, hf + "self_attn.o_proj.weight", c.dim(), q, false));
            pieces.add(new Piece(ParameterLayout.block(l, "mlp_norm"), 0, hf + "post_attention_layernorm.weight", 1, c.dim(), true));
            pieces.add(new Piece(ParameterLayout.block(l, "gate_up"), 0, hf + "mlp.gate_proj.weight", c.intermediate(), c.dim(), false));
            pieces.add(new Piece(ParameterLayout.block(l, "gate_up"), c.intermediate(), hf + "mlp.up_proj.weight", c.intermediate(), c.dim(), false));
            pieces.add(new Piece(ParameterLayout.block(l, "down"), 0, hf + "mlp.down_proj.weight", c.dim(), c.intermediate(), false));
        }
        pieces.add(new Piece("final_norm", 0, "model.norm.weight", 1, c.dim(), true));
        if (!c.tieEmbeddings()) {
            pieces.add(new Piece("lm_head", 0, "lm_head.weight", c.vocabSize(), c.dim(), false));
        }
        return pieces;
    }
}
