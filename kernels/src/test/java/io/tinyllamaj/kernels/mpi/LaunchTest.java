package io.tinyllamaj.kernels.mpi;

import org.junit.jupiter.api.Test;

import java.util.HashMap;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Launch detection from the variables each launcher sets (copied from their documented environments). */
class LaunchTest {

    /** What Open MPI 4's mpirun sets for rank 5 of 16, the second on its node of 4. */
    private static Map<String, String> mpirun() {
        return new HashMap<>(Map.of("OMPI_COMM_WORLD_SIZE", "16", "OMPI_COMM_WORLD_RANK", "5",
                "OMPI_COMM_WORLD_LOCAL_RANK", "1", "OMPI_COMM_WORLD_LOCAL_SIZE", "4", "OMPI_UNIVERSE_SIZE", "16"));
    }

    /** What Slurm's batch script sees: the allocation, no job step. */
    private static Map<String, String> slurmBatch() {
        return new HashMap<>(Map.of("SLURM_JOB_ID", "4711", "SLURM_NTASKS", "16", "SLURM_PROCID", "0", "SLURM_LOCALID", "0",
                "SLURM_NODEID", "0", "SLURM_TASKS_PER_NODE", "8(x2)"));
    }

    /** What srun adds for task 11 of a 16-task step (second node, local task 3). */
    private static Map<String, String> srun() {
        Map<String, String> env = slurmBatch();
        env.putAll(Map.of("SLURM_STEP_ID", "0", "SLURM_STEP_NUM_TASKS", "16", "SLURM_PROCID", "11", "SLURM_LOCALID", "3",
                "SLURM_NODEID", "1", "SLURM_STEP_TASKS_PER_NODE", "8(x2)"));
        return env;
    }

    @Test
    void noLauncherIsOneRank() {
        Launch launch = Launch.from(Map.of("HOME", "/root"));
        assertEquals(new Launch(Launch.Launcher.NONE, 0, 1, 0, null, false), launch);
        assertFalse(launch.distributed());
        assertEquals("launch: single process: 1 rank", launch.describe());
    }

    @Test
    void mpirunGivesRankSizeAndLocalRank() {
        Launch launch = Launch.from(mpirun());
        assertEquals(new Launch(Launch.Launcher.OPEN_MPI, 5, 16, 1, null, false), launch);
        assertTrue(launch.distributed());
        assertEquals("launch: mpirun (Open MPI): rank 5 of 16, local rank 1", launch.describe());
    }

    @Test
    void mpirunInsideAnAllocationIsStillMpirun() {
        Map<String, String> env = slurmBatch();
        env.putAll(mpirun());
        Launch launch = Launch.from(env);
        assertEquals(new Launch(Launch.Launcher.OPEN_MPI, 5, 16, 1, "4711", false), launch);
        assertEquals("launch: mpirun (Open MPI), Slurm job 4711: rank 5 of 16, local rank 1", launch.describe());
    }

    @Test
    void slurmBatchScriptAloneIsOneRank() {
        // SLURM_NTASKS=16 and SLURM_PROCID=0 describe the allocation, not this process
        Launch launch = Launch.from(slurmBatch());
        assertEquals(new Launch(Launch.Launcher.NONE, 0, 1, 0, "4711", false), launch);
        assertFalse(launch.distributed());
        assertEquals("launch: single process, inside Slurm job 4711 but not under srun: 1 rank", launch.describe());
    }

    @Test
    void srunGivesRankSizeAndLocalRankFromSlurm() {
        Launch launch = Launch.from(srun());
        assertEquals(new Launch(Launch.Launcher.SLURM, 11, 16, 3, "4711", false), launch);
        assertTrue(launch.distributed());
        assertEquals("launch: srun (Slurm), Slurm job 4711: rank 11 of 16, local rank 3", launch.describe());
    }

    @Test
    void srunWithPmixSaysSo() {
        Map<String, String> env = srun();
        env.putAll(Map.of("PMIX_RANK", "11", "PMIX_NAMESPACE", "slurm.pmix.4711.0", "PMIX_SERVER_URI41", "pmix-server.1234;tcp4://127.0.0.1:5"));
        Launch launch = Launch.from(env);
        assertEquals(new Launch(Launch.Launcher.SLURM, 11, 16, 3, "4711", true), launch);
        assertEquals("launch: srun (Slurm) with PMIx, Slurm job 4711: rank 11 of 16, local rank 3", launch.describe());
        env.put("PMIX_RANK", "2");
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> Launch.from(env));
        assertEquals("PMIX_RANK is 2 but SLURM_PROCID is 11: two launchers disagree about this rank", e.getMessage());
    }

    @Test
    void openMpi5MpirunSetsBothAndOpenMpiWins() {
        Map<String, String> env = mpirun();
        env.putAll(Map.of("PMIX_RANK", "5", "PMIX_NAMESPACE", "prterun-host-1234@1"));
        assertEquals(new Launch(Launch.Launcher.OPEN_MPI, 5, 16, 1, null, true), Launch.from(env));
    }

    @Test
    void pmixAloneGivesTheRankButNoSize() {
        Launch launch = Launch.from(Map.of("PMIX_RANK", "3", "PMIX_NAMESPACE", "prte-1@1"));
        assertEquals(new Launch(Launch.Launcher.PMIX, 3, 0, -1, null, true), launch);
        assertTrue(launch.distributed());
        assertEquals("launch: PMIx launcher: rank 3 of (size from PMIx)", launch.describe());
    }

    @Test
    void badValuesAreOneLine() {
        Map<String, String> env = srun();
        env.put("SLURM_PROCID", "eleven");
        assertEquals("environment variable SLURM_PROCID is 'eleven', not a number",
                assertThrows(IllegalArgumentException.class, () -> Launch.from(env)).getMessage());
        Map<String, String> outside = mpirun();
        outside.put("OMPI_COMM_WORLD_RANK", "16");
        assertEquals("mpirun (Open MPI) announced rank 16 of 16 ranks",
                assertThrows(IllegalArgumentException.class, () -> Launch.from(outside)).getMessage());
        Map<String, String> empty = srun();
        empty.put("SLURM_STEP_NUM_TASKS", "0");
        assertEquals("srun (Slurm) announced a world of 0 ranks",
                assertThrows(IllegalArgumentException.class, () -> Launch.from(empty)).getMessage());
    }
}
