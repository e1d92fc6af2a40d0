"""Network families over ODL operators: unrolled schemes (`unrolled`),
e2cnn equivariant blocks (`equivariant`), structure-preserving ODE networks
(`odenets`) and the certified nonexpansive learned gradient (`certified`)."""
