/* A stand-in for libcufft.so.11, for the device run only: ASTRA's wheel
 * links cuFFT (used by its FBP filter, which this package never calls) and
 * the 290 MB library cannot travel to the GPU machine. Every call fails
 * with CUFFT_NOT_SUPPORTED (16). Build:
 *   gcc -shared -fPIC -o libcufft.so.11 -Wl,-soname,libcufft.so.11 \
 *       -Wl,--version-script=cufft_stub.map cufft_stub.c
 */
int cufftPlan1d(void *plan, int nx, int type, int batch) { return 16; }
int cufftExecR2C(int plan, void *in, void *out) { return 16; }
int cufftExecC2R(int plan, void *in, void *out) { return 16; }
int cufftDestroy(int plan) { return 16; }
int cufftSetStream(int plan, void *stream) { return 16; }
