//! The processes this `tinygpt` trains with: one, or — built with `--features mpi` and
//! started by an MPI launcher (`mpirun -np N tinygpt train ...`) — N data-parallel ranks that
//! sum their gradients with MPI's all-reduce. MPI is initialised only when a launcher started
//! us, so an MPI build run plainly behaves exactly like any other.

use std::cell::Cell;

use tinygpt_train::collective::{Alone, Collective};

/// The job this process belongs to.
pub struct Job {
    #[cfg(feature = "mpi")]
    mpi: Option<mpi_ranks::MpiRanks>,
    /// Set once every rank has opened its session: from then on a rank that fails must end
    /// the others, which would wait for it in the next all-reduce.
    in_lockstep: Cell<bool>,
}

impl Job {
    /// Joins the MPI job a launcher started, or runs alone.
    pub fn join() -> anyhow::Result<Self> {
        Ok(Self {
            #[cfg(feature = "mpi")]
            mpi: mpi_ranks::MpiRanks::join()?,
            in_lockstep: Cell::new(false),
        })
    }

    pub fn collective(&self) -> &dyn Collective {
        #[cfg(feature = "mpi")]
        if let Some(mpi) = &self.mpi {
            return mpi;
        }
        &Alone
    }

    /// The MPI library's own description, when this build has MPI and a launcher started it.
    pub fn mpi_library(&self) -> Option<String> {
        #[cfg(feature = "mpi")]
        if self.mpi.is_some() {
            return mpi::environment::library_version()
                .ok()
                .map(|v| v.lines().next().unwrap_or_default().trim().to_string());
        }
        None
    }

    pub fn set_in_lockstep(&self) {
        self.in_lockstep.set(true);
    }

    /// Reports a failure of this rank; once the ranks run in lockstep, ends all of them (the
    /// others would wait for this one forever) with `code`.
    pub fn fail(&self, message: &str, code: i32) {
        let collective = self.collective();
        if collective.ranks() == 1 || collective.is_leader() {
            say!("error: {message}");
        } else {
            say!("error (rank {}): {message}", collective.rank());
        }
        #[cfg(feature = "mpi")]
        if let Some(mpi) = &self.mpi
            && self.in_lockstep.get()
        {
            mpi.abort(code);
        }
        let _ = code;
    }
}

/// Whether this binary was built with the `mpi` feature.
pub const MPI_COMPILED: bool = cfg!(feature = "mpi");

#[cfg(feature = "mpi")]
mod mpi_ranks {
    use mpi::Threading;
    use mpi::collective::SystemOperation;
    use mpi::environment::Universe;
    use mpi::topology::SimpleCommunicator;
    use mpi::traits::*;
    use tinygpt_train::collective::Collective;

    /// Environment variables MPI launchers set in the processes they start: Open MPI's
    /// mpirun, MPICH's and Intel MPI's Hydra, and PMIx launchers (Slurm's srun, prterun).
    const LAUNCHER_VARIABLES: [&str; 3] = ["OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK"];

    pub struct MpiRanks {
        world: SimpleCommunicator,
        // Dropped last: finalises MPI when the command returns.
        _universe: Universe,
    }

    impl MpiRanks {
        pub fn join() -> anyhow::Result<Option<Self>> {
            if !LAUNCHER_VARIABLES
                .iter()
                .any(|v| std::env::var_os(v).is_some())
            {
                return Ok(None);
            }
            // A training step, its all-reduce included, runs on a CPU pool thread, other
            // collectives on the main thread: one at a time, which is MPI_THREAD_SERIALIZED.
            let (universe, threading) = mpi::initialize_with_threading(Threading::Serialized)
                .ok_or_else(|| anyhow::anyhow!("MPI was already initialised"))?;
            if matches!(threading, Threading::Single | Threading::Funneled) {
                anyhow::bail!(
                    "this MPI library offers threading level {threading:?}; tinygpt needs MPI_THREAD_SERIALIZED: use an MPI built with thread support (Open MPI and MPICH are by default)"
                );
            }
            Ok(Some(Self {
                world: universe.world(),
                _universe: universe,
            }))
        }

        pub fn abort(&self, code: i32) -> ! {
            self.world.abort(code)
        }
    }

    // SAFETY: MPI is initialised with MPI_THREAD_SERIALIZED, and the trainer makes its
    // collective calls one at a time (a step's all-reduce on a pool thread while the main
    // thread waits for that step; the others on the main thread).
    unsafe impl Sync for MpiRanks {}

    impl Collective for MpiRanks {
        fn rank(&self) -> usize {
            self.world.rank() as usize
        }
        fn ranks(&self) -> usize {
            self.world.size() as usize
        }
        fn sum_f32(&self, values: &mut [f32]) {
            let send = values.to_vec();
            self.world
                .all_reduce_into(&send[..], values, SystemOperation::sum());
        }
        fn sum_f64(&self, values: &mut [f64]) {
            let send = values.to_vec();
            self.world
                .all_reduce_into(&send[..], values, SystemOperation::sum());
        }
        fn max_u64(&self, value: u64) -> u64 {
            let mut max = 0u64;
            self.world
                .all_reduce_into(&value, &mut max, SystemOperation::max());
            max
        }
        fn barrier(&self) {
            self.world.barrier();
        }
    }
}
