import type { Dispatch } from 'react';
import type { WizardAction, WizardState } from '../state';
import type { Preparation } from '../usePreparation';

/** StepProps is what every step of the wizard gets: the state, the way to change it, and the console calls. */
export interface StepProps {
  s: WizardState;
  dispatch: Dispatch<WizardAction>;
  prep: Preparation;
  /** desktop: files are chosen with the system's dialogs. */
  desktop: boolean;
}
