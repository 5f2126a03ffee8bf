package io.tinyllamaj.trainer.distributed;

import io.tinyllamaj.kernels.mpi.Launch;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertDoesNotThrow;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

/** The configured world size against the launcher's, and the world MPI formed against both. */
class LaunchWorldTest {

    private static final Launch SRUN = new Launch(Launch.Launcher.SLURM, 0, 2, 0, "7", true);
    private static final Launch MPIRUN = new Launch(Launch.Launcher.OPEN_MPI, 0, 2, 0, null, false);
    private static final Launch NONE = new Launch(Launch.Launcher.NONE, 0, 1, 0, null, false);

    @Test
    void configuredSizeMustMatchTheLauncher() {
        assertDoesNotThrow(() -> Distributed.requireWorldSize(SRUN, 2));
        assertEquals("distributed.world_size is 4 but srun started 2 ranks (leave distributed.world_size out, or set it to auto, "
                        + "to take srun's)",
                assertThrows(IllegalArgumentException.class, () -> Distributed.requireWorldSize(SRUN, 4)).getMessage());
        assertEquals("distributed.world_size is 4 but mpirun started 2 ranks (leave distributed.world_size out, or set it to auto, "
                        + "to take mpirun's)",
                assertThrows(IllegalArgumentException.class, () -> Distributed.requireWorldSize(MPIRUN, 4)).getMessage());
        assertEquals("distributed.world_size is 2 but this process was not started by mpirun or srun "
                        + "(use: mpirun -np 2 or srun -n 2 tinyllama pretrain ...)",
                assertThrows(IllegalArgumentException.class, () -> Distributed.requireWorldSize(NONE, 2)).getMessage());
        // a PMIx launcher alone tells its size only after MPI starts
        assertDoesNotThrow(() -> Distributed.requireWorldSize(new Launch(Launch.Launcher.PMIX, 1, 0, -1, null, true), 2));
    }

    @Test
    void worldsOfOneUnderSrunNameTheFix() {
        assertDoesNotThrow(() -> Distributed.requireFormedWorld(SRUN, 2, 2));
        assertEquals("srun (Slurm) started 2 ranks but MPI formed a world of 1 (Open MPI joins srun's ranks through PMIx: "
                        + "use srun --mpi=pmix, see srun --mpi=list)",
                assertThrows(IllegalArgumentException.class, () -> Distributed.requireFormedWorld(SRUN, 2, 1)).getMessage());
    }
}
