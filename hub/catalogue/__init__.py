"""The live catalogue (issue 16): products, scheduled prices and promotions changed from the back office
without a restart, promo codes at the register, labels, lab results, imports and the Form 8300 worksheet."""
