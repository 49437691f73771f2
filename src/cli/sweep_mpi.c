/* MPI for `diffscope sweep`, loaded with dlopen only when a launcher started the process.
 *
 * Why not link libmpi: the binary must run where Open MPI is not installed (a workstation, a
 * GPU host, a SLURM job array with --shard), and a process linked with it pays MPI_Init's
 * start-up in every command; docs/sweep.md has the measurements. A sweep needs four calls
 * (init, rank and size, one reduction of an int, finalize), so the cost of dlopen is small.
 *
 * This file is compiled with Open MPI's mpi.h (pkg-config ompi-c) for the types; the handles
 * MPI_COMM_WORLD, MPI_INT and MPI_MAX are Open MPI's exported objects, looked up by name. */
#include <dlfcn.h>
#include <mpi.h>
#include <stdlib.h>
#include "cli/sweep.h"
#include "diffscope/error.h"

/* Open MPI 4 and 5 (libmpi.so.40). */
#define LIBMPI "libmpi.so.40"

static struct {
    int active;
    __typeof__(MPI_Init) *init;
    __typeof__(MPI_Comm_rank) *comm_rank;
    __typeof__(MPI_Comm_size) *comm_size;
    __typeof__(MPI_Allreduce) *allreduce;
    __typeof__(MPI_Finalize) *finalize;
    MPI_Comm world;
    MPI_Datatype int_type;
    MPI_Op max;
} mpi;

/* Variables that mpirun (Open MPI), srun (PMIx or PMI-2) and other launchers set in each rank. */
static int launched(void) {
    static const char *const vars[] = {"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK"};
    for (size_t i = 0; i < sizeof vars / sizeof *vars; i++)
        if (getenv(vars[i])) return 1;
    return 0;
}

static void *sym(void *lib, const char *name, int *missing) {
    void *p = dlsym(lib, name);
    if (!p) *missing = 1;
    return p;
}

int sweep_mpi_init(int *argc, char ***argv, int *rank, int *size) {
    *rank = 0, *size = 1;
    if (!launched()) return 0;
    /* RTLD_GLOBAL: Open MPI's own plugins, loaded by libmpi, resolve their symbols in it. */
    void *lib = dlopen(LIBMPI, RTLD_NOW | RTLD_GLOBAL);
    if (!lib) return ds_fail("started by an MPI launcher, but %s cannot be loaded (%s): install Open MPI", LIBMPI, dlerror());
    int missing = 0;
    mpi.init = (__typeof__(mpi.init))sym(lib, "MPI_Init", &missing);
    mpi.comm_rank = (__typeof__(mpi.comm_rank))sym(lib, "MPI_Comm_rank", &missing);
    mpi.comm_size = (__typeof__(mpi.comm_size))sym(lib, "MPI_Comm_size", &missing);
    mpi.allreduce = (__typeof__(mpi.allreduce))sym(lib, "MPI_Allreduce", &missing);
    mpi.finalize = (__typeof__(mpi.finalize))sym(lib, "MPI_Finalize", &missing);
    mpi.world = (MPI_Comm)sym(lib, "ompi_mpi_comm_world", &missing);
    mpi.int_type = (MPI_Datatype)sym(lib, "ompi_mpi_int", &missing);
    mpi.max = (MPI_Op)sym(lib, "ompi_mpi_op_max", &missing);
    if (missing) return ds_fail("%s is not Open MPI's library (a symbol is missing)", LIBMPI);
    if (mpi.init(argc, argv) != MPI_SUCCESS) return ds_fail("MPI_Init failed");
    mpi.active = 1;
    mpi.comm_rank(mpi.world, rank);
    mpi.comm_size(mpi.world, size);
    return 0;
}

int sweep_mpi_max(int v) {
    int out = v;
    if (mpi.active) mpi.allreduce(&v, &out, 1, mpi.int_type, mpi.max, mpi.world);
    return out;
}

void sweep_mpi_finalize(void) {
    if (mpi.active) mpi.finalize();
    mpi.active = 0;
}
