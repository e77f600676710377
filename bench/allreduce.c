/* Times MPI_Allreduce of the default and nanogpt-char gradients (+1 float: the loss), as
 * tinygpt sends them.  mpicc -O2 bench/allreduce.c -o /tmp/allreduce && mpirun -np 2 /tmp/allreduce */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
int main(int argc, char **argv) {
  MPI_Init(&argc, &argv);
  int rank; MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  int sizes[2] = {812289, 10778113};
  for (int s = 0; s < 2; s++) {
    int n = sizes[s];
    float *a = malloc(n * 4), *b = malloc(n * 4);
    for (int i = 0; i < n; i++) a[i] = i;
    MPI_Allreduce(a, b, n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
    MPI_Barrier(MPI_COMM_WORLD);
    double t = MPI_Wtime();
    int reps = 50;
    for (int r = 0; r < reps; r++) MPI_Allreduce(a, b, n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
    t = (MPI_Wtime() - t) / reps;
    if (rank == 0) printf("%d floats: %.2f ms per all-reduce\n", n, t * 1e3);
    free(a); free(b);
  }
  MPI_Finalize();
}
